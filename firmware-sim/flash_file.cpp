#include "firmware-sim/flash_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace saferlink::sim {

void write_flash_file(const std::filesystem::path& path, const Flash& flash) {
  const std::string text = to_text(flash);
  const std::filesystem::path temp = path.string() + ".tmp";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw std::runtime_error("cannot write flash " + temp.string() + ": " + std::strerror(errno));
  }
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string reason = std::strerror(errno);
      ::close(fd);
      throw std::runtime_error("cannot write flash " + temp.string() + ": " + reason);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("cannot sync flash " + temp.string() + ": " + reason);
  }
  ::close(fd);
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) throw std::runtime_error("cannot replace flash " + path.string() + ": " + ec.message());
}

Flash read_flash_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Flash{};
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read flash " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string why;
  auto flash = flash_from_text(buffer.str(), &why);
  if (!flash) throw std::runtime_error("flash " + path.string() + " is damaged: " + why);
  return *flash;
}

}  // namespace saferlink::sim
