// The `saferlink coord …` command tree: coordinator (and, where the hub allows, police and CCTV)
// requests to the intelligence store. Each subcommand turns its flags into a Query (op + JSON
// arguments, docs/protocol.md) and prints the result. Wiring only; called from client/main.cpp.
#pragma once

#include "client/client.hpp"

#include <functional>
#include <string>

namespace CLI {
class App;
}

namespace saferlink::client {

// Adds `coord` to `app`. When a coord subcommand was parsed, `*chosen` is set to a function
// that runs it and returns the exit status.
void add_coord_commands(CLI::App& app, const ClientOptions& options,
                        std::function<int()>* chosen);

}  // namespace saferlink::client
