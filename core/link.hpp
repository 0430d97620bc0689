// Link: what the hub needs of one device's connection, whatever carries it — the framed TLS
// Connection of a handset (core/connection.hpp) or the console's WebSocket
// (server/console.cpp). The hub queues frames on it, closes it, and reads its queue depth.
//
// Thread contract: every member may be called from any thread (implementations post to their
// own strand). executor() is the strand the link's handler runs on.
#pragma once

#include "core/envelope.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <cstddef>
#include <string>

namespace saferlink {

class Link {
 public:
  virtual ~Link() = default;

  // Queues an encoded frame (length prefix + Envelope) at a priority class.
  virtual void send(Frame frame, Priority priority) = 0;
  void send(v1::Envelope& envelope) {
    const Priority p = priority_of(envelope);
    send(encode(envelope), p);
  }
  // Sends what is queued, then ends the link. `reason` is logged.
  virtual void close(std::string reason) = 0;
  // Ends the link now.
  virtual void abort(std::string reason) = 0;
  // Frames queued and not yet written.
  virtual std::size_t queued_messages() const = 0;
  // The strand the link runs on.
  virtual const boost::asio::any_io_executor& executor() const = 0;
};

}  // namespace saferlink
