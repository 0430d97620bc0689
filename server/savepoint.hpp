// Savepoint: a SAVEPOINT for the duration of one function. commit() releases it; otherwise the
// destructor rolls it back (an early return or an exception), so the rows one call writes —
// with their audit row — go in together or not at all. Nests inside the Store's batch
// transaction, or is a transaction of its own on a bare database (tests). Store thread only,
// like every other use of the database handle.
#pragma once

#include <SQLiteCpp/Database.h>

#include <exception>

namespace saferlink::server {

class Savepoint {
 public:
  explicit Savepoint(SQLite::Database& db) : db_(db) { db_.exec("SAVEPOINT saferlink_call"); }
  ~Savepoint() {
    if (done_) return;
    try {
      db_.exec("ROLLBACK TO saferlink_call");
      db_.exec("RELEASE saferlink_call");
    } catch (const std::exception&) {
      // The exception that is unwinding us is the one worth reporting.
    }
  }
  Savepoint(const Savepoint&) = delete;
  Savepoint& operator=(const Savepoint&) = delete;

  void commit() {
    db_.exec("RELEASE saferlink_call");
    done_ = true;
  }

 private:
  SQLite::Database& db_;
  bool done_ = false;
};

}  // namespace saferlink::server
