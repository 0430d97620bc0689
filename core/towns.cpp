#include "core/towns.hpp"

#include <algorithm>

namespace saferlink {

const std::vector<std::string>& default_towns() {
  static const std::vector<std::string> towns{"rochester", "strood", "chatham", "gillingham",
                                              "rainham"};
  return towns;
}

bool known_town(const std::vector<std::string>& towns, std::string_view town) {
  return std::find(towns.begin(), towns.end(), town) != towns.end();
}

}  // namespace saferlink
