#include "client/sar.hpp"

#include "client/commands.hpp"
#include "core/base64.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <ostream>

namespace saferlink::client {

namespace asio = boost::asio;
using asio::awaitable;
using json = nlohmann::json;

namespace {

// One query on an open connection; the parsed result, or ClientError with the hub's reason.
awaitable<json> ask(Client& client, const std::string& op, const json& args,
                    std::chrono::milliseconds timeout) {
  v1::Envelope envelope;
  envelope.mutable_query()->set_op(op);
  envelope.mutable_query()->set_args_json(args.dump());
  const std::uint64_t id = client.send(std::move(envelope));
  for (;;) {
    auto e = co_await client.next(timeout);
    if (!e) throw ClientError("the hub did not answer " + op + " in time");
    if (e->has_error() && e->error().in_reply_to() == id) throw ClientError(e->error().message());
    if (e->has_query_result() && e->query_result().in_reply_to() == id) {
      auto result = json::parse(e->query_result().result_json(), nullptr, false);
      if (result.is_discarded()) throw ClientError("the hub answered " + op + " with bad JSON");
      co_return result;
    }
  }
}

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close();
  if (!file) throw ClientError("cannot write " + path.string());
}

std::string extension(const std::string& mime) {
  if (mime == "image/jpeg") return ".jpg";
  if (mime == "image/png") return ".png";
  if (mime == "image/webp") return ".webp";
  return ".bin";
}

}  // namespace

int run_sar(const ClientOptions& options, std::int64_t profile_id,
            const std::filesystem::path& out_dir, std::ostream& out, std::ostream& err) {
  return run_command(err, [&]() -> awaitable<int> {
        Client client(co_await asio::this_coro::executor, options);
        co_await client.connect();
        const auto timeout = options.connect_timeout * 6;
        // Arguments are named locals: GCC 12 mishandles braced temporaries in co_await.
        const json sar_args = {{"profile_id", profile_id}};
        const json sar = co_await ask(client, "sar", sar_args, timeout);
        std::error_code ec;
        std::filesystem::create_directories(out_dir / "photos", ec);
        if (ec) throw ClientError("cannot create " + out_dir.string() + ": " + ec.message());
        const auto document =
            out_dir / ("profile-" + std::to_string(sar.value("profile_id", profile_id)) + ".json");
        write_file(document, sar["export"].dump(2) + "\n");
        out << document.string() << std::endl;
        for (const auto& sha : sar["photos"]) {
          std::string bytes;
          std::string mime;
          for (bool finished = false; !finished;) {
            const json piece_args = {{"sha256", sha}, {"offset", bytes.size()}};
            const json piece = co_await ask(client, "photos.get", piece_args, timeout);
            mime = piece.value("mime", "");
            const auto decoded = base64_decode(piece.value("data_b64", ""));
            if (!decoded) throw ClientError("the hub sent a photo piece that is not base64");
            bytes += *decoded;
            finished = piece.value("done", true);
          }
          const auto path = out_dir / "photos" / (sha.get<std::string>() + extension(mime));
          write_file(path, bytes);
          out << path.string() << std::endl;
        }
        client.close();
        co_return 0;
  });
}

int run_audit_verify(const ClientOptions& options, bool as_json, std::ostream& out,
                     std::ostream& err) {
  return run_command(err, [&]() -> awaitable<int> {
    Client client(co_await asio::this_coro::executor, options);
    co_await client.connect();
    const json no_args = json::object();
    const json v = co_await ask(client, "audit.verify", no_args, options.connect_timeout * 6);
    client.close();
    if (as_json) {
      out << v.dump() << std::endl;
    } else if (v.value("ok", false)) {
      out << "audit chain intact: " << v.value("rows", 0) << " rows; last row "
          << v.value("last_seq", 0) << " has hash " << v.value("last_hash", "")
          << " (record it to detect rows cut off the end)" << std::endl;
    }
    if (!v.value("ok", false)) {
      err << "saferlink: audit chain broken: " << v.value("reason", "") << std::endl;
      co_return 1;
    }
    co_return 0;
  });
}

}  // namespace saferlink::client
