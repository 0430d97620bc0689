// One line for a person about a message a handset received (the interactive handset's screen,
// the swarm's per-handset logs). Plain function.
#pragma once

#include "proto/saferlink.pb.h"

#include <string>

namespace saferlink::sim {

std::string describe(const v1::Envelope& envelope);

}  // namespace saferlink::sim
