#include "server/blob_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace saferlink::server {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void throw_errno(const std::string& what, const fs::path& path) {
  throw std::system_error(errno, std::generic_category(), what + " " + path.string());
}

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

void write_all(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write", path);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void pwrite_all(int fd, std::string_view data, std::uint64_t offset, const fs::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write", path);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
}

// Reads exactly `size` bytes from the start of `fd`; false if the file is shorter.
bool pread_all(int fd, std::string& out, std::size_t size, const fs::path& path) {
  out.assign(size, '\0');
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out.data() + done, size - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read", path);
    }
    if (n == 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

std::uint64_t file_size(int fd, const fs::path& path) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) throw_errno("cannot stat", path);
  return static_cast<std::uint64_t>(st.st_size);
}

void fsync_dir(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) throw_errno("cannot open directory", dir);
  if (::fsync(fd.get()) != 0) throw_errno("cannot fsync directory", dir);
}

// Creates `dir` (mode 0700) if missing and makes the new entry durable in its parent.
void ensure_dir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) {
    fsync_dir(dir.parent_path());
    return;
  }
  const int error = errno;
  std::error_code ec;
  if (error == EEXIST && fs::is_directory(dir, ec)) return;
  errno = error;
  throw_errno("cannot create directory", dir);
}

bool valid_upload_id(std::string_view id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
         });
}

std::string meta_text(std::string_view sha256, std::uint64_t size) {
  return "saferlink-upload 1\n" + std::string(sha256) + "\n" + std::to_string(size) + "\n";
}

// The meta file's text (at most a few hundred bytes), or "" when it is missing or unreadable.
std::string read_meta(const fs::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return {};
  std::array<char, 256> buffer{};
  const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
  return n > 0 ? std::string(buffer.data(), static_cast<std::size_t>(n)) : std::string();
}

void write_meta(const fs::path& path, std::string_view text) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (fd.get() < 0) throw_errno("cannot create", path);
  write_all(fd.get(), text, path);
}

// Opens `path` (creating it, mode 0600) and takes an exclusive lock without waiting. Returns
// an invalid Fd when someone else holds the lock. Guards against the file having been deleted
// and recreated between open and lock (the lock would then be on a file nobody else sees).
Fd open_locked(const fs::path& path, bool create) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600));
    if (fd.get() < 0) {
      if (!create && errno == ENOENT) return Fd();
      throw_errno("cannot open", path);
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) return Fd();
      throw_errno("cannot lock", path);
    }
    struct stat held{}, named{};
    if (::fstat(fd.get(), &held) != 0) throw_errno("cannot stat", path);
    if (::stat(path.c_str(), &named) == 0 && named.st_ino == held.st_ino &&
        named.st_dev == held.st_dev)
      return fd;
    if (!create) return Fd();
  }
  throw std::runtime_error("partial upload " + path.string() + " keeps being replaced");
}

std::string grouped(std::uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(' ');
    out.push_back(digits[i]);
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// BlobStore

BlobStore::BlobStore(fs::path root) : root_(std::move(root)) {
  if (root_.empty()) throw std::invalid_argument("blob store root is empty");
  if (!fs::exists(root_)) {
    fs::create_directories(root_);
    fs::permissions(root_, fs::perms::owner_all);
  }
  if (!fs::is_directory(root_))
    throw std::system_error(std::make_error_code(std::errc::not_a_directory),
                            "blob store root " + root_.string());
  ensure_dir(partial_dir());
}

fs::path BlobStore::path_of(std::string_view sha256) const {
  if (!is_sha256_hex(sha256))
    throw std::invalid_argument("not a SHA-256 (64 lower-case hex digits): " +
                                std::string(sha256.substr(0, 80)));
  return root_ / std::string(sha256.substr(0, 2)) / std::string(sha256);
}

bool BlobStore::has(std::string_view sha256) const {
  if (!is_sha256_hex(sha256)) return false;
  std::error_code ec;
  return fs::is_regular_file(path_of(sha256), ec);
}

std::optional<std::string> BlobStore::read(std::string_view sha256) const {
  if (!is_sha256_hex(sha256)) return std::nullopt;
  const fs::path path = path_of(sha256);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("cannot open", path);
  }
  std::string bytes;
  const std::uint64_t size = file_size(fd.get(), path);
  if (!pread_all(fd.get(), bytes, static_cast<std::size_t>(size), path) ||
      sha256_hex(bytes) != sha256)
    throw std::runtime_error("stored image " + path.string() +
                             " is damaged: its bytes no longer match its SHA-256");
  return bytes;
}

std::string BlobStore::put(const CheckedImage& image) const {
  if (image.bytes.empty()) throw std::invalid_argument("BlobStore::put: an empty image");
  std::string sha = sha256_hex(image.bytes);
  if (has(sha)) return sha;  // the same image is stored once

  const fs::path path = path_of(sha);
  const fs::path dir = path.parent_path();
  ensure_dir(dir);

  std::string temp_name = (dir / ".tmp-XXXXXX").string();
  Fd fd(::mkostemp(temp_name.data(), O_CLOEXEC));  // mode 0600
  if (fd.get() < 0) throw_errno("cannot create a temporary file in", dir);
  const fs::path temp(temp_name);
  try {
    write_all(fd.get(), image.bytes, temp);
    if (::fsync(fd.get()) != 0) throw_errno("cannot fsync", temp);
    // Another thread storing the same image may have won; its file has the same bytes.
    if (::rename(temp.c_str(), path.c_str()) != 0) throw_errno("cannot rename into", path);
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  fsync_dir(dir);
  fsync_dir(root_);  // the entry for `dir`, should another thread have just created it
  return sha;
}

bool BlobStore::remove(std::string_view sha256) const {
  if (!is_sha256_hex(sha256)) return false;
  const fs::path path = path_of(sha256);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return false;
    throw_errno("cannot delete", path);
  }
  fsync_dir(path.parent_path());
  return true;
}

std::vector<std::string> BlobStore::list() const {
  std::vector<std::string> out;
  for (const fs::directory_entry& dir : fs::directory_iterator(root_)) {
    const std::string prefix = dir.path().filename().string();
    if (!dir.is_directory() || prefix.size() != 2) continue;
    for (const fs::directory_entry& file : fs::directory_iterator(dir.path())) {
      const std::string name = file.path().filename().string();
      if (file.is_regular_file() && is_sha256_hex(name) && name.compare(0, 2, prefix) == 0)
        out.push_back(name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t BlobStore::remove_stale_partials(fs::file_time_type cutoff) const {
  std::size_t removed = 0;
  std::vector<fs::path> candidates;
  for (const fs::directory_entry& entry : fs::directory_iterator(partial_dir())) {
    if (entry.is_regular_file() && entry.path().extension() != ".meta")
      candidates.push_back(entry.path());
  }
  for (const fs::path& data : candidates) {
    std::error_code ec;
    const fs::file_time_type written = fs::last_write_time(data, ec);
    if (ec || written >= cutoff) continue;
    Fd fd = open_locked(data, false);
    if (fd.get() < 0) continue;  // in use by an open Upload, or already gone
    fs::path meta = data;
    meta += ".meta";
    ::unlink(meta.c_str());
    if (::unlink(data.c_str()) == 0) ++removed;
  }
  // Meta files whose data is gone (a crash between the two unlinks).
  for (const fs::directory_entry& entry : fs::directory_iterator(partial_dir())) {
    if (entry.path().extension() != ".meta") continue;
    fs::path data = entry.path();
    data.replace_extension();
    std::error_code ec;
    if (!fs::exists(data, ec) && !ec) ::unlink(entry.path().c_str());
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// Upload

std::variant<Upload, UploadError> Upload::open(const BlobStore& store, std::string_view id,
                                               std::uint64_t declared_size,
                                               std::string_view declared_sha256,
                                               std::size_t cap) {
  if (!valid_upload_id(id))
    return UploadError{"upload id must be 1 to 128 characters of A-Z, a-z, 0-9, _ and -"};
  if (!is_sha256_hex(declared_sha256))
    return UploadError{"declared SHA-256 must be 64 lower-case hex digits"};
  if (declared_size == 0) return UploadError{"declared size is 0: an empty file is not an image"};
  if (declared_size > cap)
    return UploadError{"image of " + grouped(declared_size) + " bytes exceeds the " +
                       grouped(cap) + "-byte cap"};

  Upload upload;
  upload.id_ = std::string(id);
  upload.declared_sha256_ = std::string(declared_sha256);
  upload.declared_size_ = declared_size;
  upload.cap_ = cap;
  upload.data_path_ = store.partial_dir() / upload.id_;
  upload.meta_path_ = store.partial_dir() / (upload.id_ + ".meta");

  Fd fd = open_locked(upload.data_path_, true);
  if (fd.get() < 0)
    return UploadError{"upload " + upload.id_ + " is already open on another connection", true};

  // Resume only what was sent for the same declaration; anything else starts again.
  const std::string meta = meta_text(declared_sha256, declared_size);
  const std::uint64_t have = file_size(fd.get(), upload.data_path_);
  if (read_meta(upload.meta_path_) == meta && have <= declared_size) {
    upload.received_ = have;
  } else {
    if (::ftruncate(fd.get(), 0) != 0) throw_errno("cannot truncate", upload.data_path_);
    write_meta(upload.meta_path_, meta);
    upload.received_ = 0;
  }
  upload.fd_ = fd.release();
  return upload;
}

std::string Upload::id_for(std::string_view sender_id, std::string_view declared_sha256) {
  std::string key(sender_id);
  key.push_back('\0');
  key.append(declared_sha256);
  return sha256_hex(key);
}

Upload::Upload(Upload&& other) noexcept
    : data_path_(std::move(other.data_path_)),
      meta_path_(std::move(other.meta_path_)),
      id_(std::move(other.id_)),
      declared_sha256_(std::move(other.declared_sha256_)),
      declared_size_(other.declared_size_),
      received_(other.received_),
      cap_(other.cap_),
      fd_(std::exchange(other.fd_, -1)) {}

Upload& Upload::operator=(Upload&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    data_path_ = std::move(other.data_path_);
    meta_path_ = std::move(other.meta_path_);
    id_ = std::move(other.id_);
    declared_sha256_ = std::move(other.declared_sha256_);
    declared_size_ = other.declared_size_;
    received_ = other.received_;
    cap_ = other.cap_;
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

Upload::~Upload() {
  if (fd_ >= 0) ::close(fd_);
}

ChunkVerdict Upload::accept(std::uint64_t offset, std::string_view chunk) {
  const auto refuse = [this](std::string reason) {
    return ChunkVerdict{false, received_, std::move(reason)};
  };
  if (fd_ < 0) return refuse("upload " + id_ + " is closed");
  if (chunk.size() > kMaxChunkBytes)
    return refuse("chunk of " + grouped(chunk.size()) + " bytes exceeds the " +
                  grouped(kMaxChunkBytes) + "-byte chunk limit");
  if (chunk.empty()) return refuse("empty chunk");
  if (offset != received_)
    return refuse("chunk at offset " + grouped(offset) + ", expected offset " +
                  grouped(received_));
  if (chunk.size() > declared_size_ - received_)
    return refuse("chunk runs past the declared size of " + grouped(declared_size_) + " bytes");

  try {
    pwrite_all(fd_, chunk, offset, data_path_);
  } catch (...) {
    // Keep the partial consistent with received_ so that a retry can resume.
    (void)::ftruncate(fd_, static_cast<off_t>(received_));
    throw;
  }
  received_ += chunk.size();
  return ChunkVerdict{true, received_, {}};
}

std::variant<CheckedImage, UploadError> Upload::complete() {
  if (fd_ < 0) return UploadError{"upload " + id_ + " is closed"};
  if (received_ < declared_size_)
    return UploadError{"upload incomplete: " + grouped(received_) + " of " +
                           grouped(declared_size_) + " bytes received",
                       true};

  std::string bytes;
  if (!pread_all(fd_, bytes, static_cast<std::size_t>(declared_size_), data_path_)) {
    close_and_delete();
    return UploadError{"upload " + id_ + " lost bytes on disk; send it again"};
  }
  const std::string actual = sha256_hex(bytes);
  if (actual != declared_sha256_) {
    close_and_delete();
    return UploadError{"SHA-256 mismatch: declared " + declared_sha256_ + ", received " + actual};
  }
  ImageCheck checked = check_image(bytes, cap_);
  close_and_delete();
  if (auto* error = std::get_if<ImageError>(&checked)) return UploadError{std::move(error->reason)};
  return std::get<CheckedImage>(std::move(checked));
}

void Upload::discard() {
  if (fd_ >= 0) close_and_delete();
}

void Upload::close_and_delete() {
  // Unlink while still holding the lock, so that no one resumes what is being deleted.
  ::unlink(meta_path_.c_str());
  ::unlink(data_path_.c_str());
  ::close(fd_);
  fd_ = -1;
}

}  // namespace saferlink::server
