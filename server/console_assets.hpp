// The console's static files (console/ in the repository), compiled into the hub by
// console/embed.cmake: HTML, CSS and plain JavaScript modules, served as they are.
#pragma once

#include <string>
#include <vector>

namespace saferlink::server {

struct ConsoleAsset {
  std::string path;  // "/index.html"
  std::string body;
};

const std::vector<ConsoleAsset>& console_assets();

}  // namespace saferlink::server
