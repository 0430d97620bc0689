// Store: the hub's SQLite database and the one thread that touches it.
//
// Every database call runs on the store thread. Callers submit a job (a function of the
// database); the store runs queued jobs in batches, each job in its own SAVEPOINT inside one
// transaction, then COMMITs once (group commit: many confirmations share one fsync). A job's
// completion is called on the store thread only after that COMMIT has returned, with nullptr
// on success or the exception that failed the job (or the commit). Completions must be short:
// post the result to your own executor.
//
// The database is opened in WAL mode with synchronous=FULL and foreign keys on, and migrated
// forward (server/migrations); a database newer than this binary is refused at open.
//
// submit() may be called from any thread. The destructor runs what was submitted, then joins.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace SQLite {
class Database;
}

namespace saferlink::server {

class Store {
 public:
  using Job = std::function<void(SQLite::Database&)>;
  using Done = std::function<void(std::exception_ptr)>;

  struct Options {
    std::string path;          // a file, or ":memory:" for tests
    std::size_t max_batch = 512;  // jobs per transaction
  };

  // Opens and migrates; throws std::runtime_error with a clear message on failure
  // (unwritable path, newer schema, corrupt file).
  explicit Store(Options options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  void submit(Job job, Done done);

  // Runs `job` on the store thread and waits for its commit. For start-up and tests only:
  // never from a network thread.
  void run_sync(Job job);

  // The schema version this binary knows (the newest migration).
  static int latest_schema_version();

  // Counters, readable from any thread.
  std::uint64_t commits() const;
  std::uint64_t jobs_done() const;

 private:
  struct Item {
    Job job;
    Done done;
  };
  void thread_main();
  // Runs one batch in one transaction and calls its completions. Jobs the batch could not
  // start (the transaction vanished under it) are put back at the front of the queue.
  void run_batch(std::deque<Item>& batch);

  std::unique_ptr<SQLite::Database> db_;  // store thread only (after construction)
  std::size_t max_batch_;                 // constant after construction
  std::mutex mutex_;                      // guards queue_ and stopping_
  std::condition_variable wake_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> commits_{0};    // written by the store thread, read by anyone
  std::atomic<std::uint64_t> jobs_done_{0};  // written by the store thread, read by anyone
  std::thread thread_;                    // started last in the constructor
};

// Applies every migration newer than the database's user_version, each in its own
// transaction. Throws if the database is newer than this binary. Exposed for tests.
void migrate(SQLite::Database& db);

}  // namespace saferlink::server
