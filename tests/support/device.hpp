// TestDevice: a handset for integration tests with a blocking interface. It runs a Client on
// its own io_context thread; every call waits for the result (with a timeout) so a test reads
// as a sequence of steps. Stops its thread in the destructor.
#pragma once

#include "client/client.hpp"
#include "client/gallery.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace saferlink::test {

using namespace std::chrono_literals;

class TestDevice {
 public:
  TestDevice(const std::filesystem::path& certs, const std::string& id, const std::string& hub,
             bool auto_delivered = true);
  // With options changed by `tweak` before the client is made (resume, gallery, ...).
  TestDevice(const std::filesystem::path& certs, const std::string& id, const std::string& hub,
             const std::function<void(client::ClientOptions&)>& tweak);
  ~TestDevice();

  // Connects and waits for the welcome; throws client::ClientError on refusal.
  v1::Welcome connect();
  std::uint64_t send(v1::Envelope envelope);
  std::optional<v1::Envelope> next(std::chrono::milliseconds timeout);
  // Waits for the first envelope matching `pred` (others are kept in `seen`).
  std::optional<v1::Envelope> wait_for(const std::function<bool(const v1::Envelope&)>& pred,
                                       std::chrono::milliseconds timeout = 5s);
  // Collects everything that arrives within `window`.
  std::vector<v1::Envelope> drain(std::chrono::milliseconds window);

  // Sends a panic with alert id "<id>:<seq>" and returns its msg_id.
  std::uint64_t panic(std::uint64_t seq, v1::AlertStatusKind status = v1::ACTUAL);
  std::uint64_t status(const std::string& alert_id, v1::RecipientStatusKind status);
  std::uint64_t cancel(const std::string& alert_id);
  // Sends a Query and waits for its QueryResult or Error.
  v1::Envelope query(const std::string& op, const std::string& args_json);

  // Uploads an image with client::upload_image and returns the hub's final status; throws
  // client::UploadRefused (with the hub's reason) or client::ClientError.
  v1::UploadStatus upload(std::string bytes);
  // Step by step, for tests of the protocol itself: UploadBegin, UploadChunk, and the next
  // UploadStatus about `sha256` (nullopt when none comes within `timeout`).
  std::uint64_t upload_begin(const std::string& sha256, std::uint64_t size);
  std::uint64_t upload_chunk(const std::string& sha256, std::uint64_t offset, std::string data);
  std::optional<v1::UploadStatus> upload_status(const std::string& sha256,
                                                std::chrono::milliseconds timeout = 5s);

  // Store-and-forward: the highest sequence number received, and duplicates dropped.
  client::Cursors cursor();
  std::uint64_t duplicates();
  // Cuts the link now, as a radio drop-out would.
  void abort();
  // client::fetch_photo on this device's connection; envelopes that arrive meanwhile go to
  // `seen`. With `cut_link_after`, the link is cut (abort) once that many bytes are held.
  client::PhotoFetch fetch_photo(client::GalleryFolder& folder, const std::string& sha256,
                                 std::uint64_t size, std::uint64_t cut_link_after = 0);

  const std::string& id() const { return id_; }
  std::vector<v1::Envelope> seen;

 private:
  template <class T>
  T run(std::function<boost::asio::awaitable<T>()> body);

  void start(client::ClientOptions options);

  std::string id_;
  boost::asio::io_context io_;
  std::unique_ptr<client::Client> client_;
  std::thread thread_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
};

// Predicates for wait_for.
std::function<bool(const v1::Envelope&)> is_panic(const std::string& alert_id);
std::function<bool(const v1::Envelope&)> is_update(const std::string& alert_id,
                                                   v1::RecipientStatusKind status);
std::function<bool(const v1::Envelope&)> is_reply(std::uint64_t msg_id);

}  // namespace saferlink::test
