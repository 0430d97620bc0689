// Towns of the partnership. A town id is lower-case ASCII ("chatham"); "all" means every town.
// Plain values; callable from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace saferlink {

// The Safer Medway Partnership's five towns, the default everywhere a town list is configured.
const std::vector<std::string>& default_towns();

// True when `town` is in `towns` (exact match).
bool known_town(const std::vector<std::string>& towns, std::string_view town);

}  // namespace saferlink
