// Base64 (RFC 4648, with padding) over OpenSSL's EVP block functions: photo pieces in query
// answers (photos.get) and the console's subject access download.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace saferlink {

std::string base64_encode(std::string_view bytes);
// nullopt when `text` is not base64 (length not a multiple of 4, a bad character).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace saferlink
