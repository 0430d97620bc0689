// Reading and writing a handset's flash image (firmware-sim/flash.hpp) as a file: the I/O half,
// kept out of the pure handset logic. Plain functions; one file belongs to one handset.
#pragma once

#include "firmware-sim/flash.hpp"

#include <filesystem>

namespace saferlink::sim {

// Atomic replace of `path` (temporary file, fsync, rename). Throws std::runtime_error.
void write_flash_file(const std::filesystem::path& path, const Flash& flash);
// A missing file is a new handset (empty Flash); a damaged one throws std::runtime_error.
Flash read_flash_file(const std::filesystem::path& path);

}  // namespace saferlink::sim
