// See relay.h. One object per connection, owned by itself: it is deleted when
// both sockets are handed back to the loop (Finish).
#include "relay.h"

namespace uring_proto {
namespace {

constexpr size_t kMaxEarlyBytes = 64 * 1024;

class Session : public SockEvents {
 public:
  Session(Loop& loop, const sockaddr_in& upstream) : loop_(loop), upstream_addr_(upstream) {}
  void Start(int client_fd) { client_ = loop_.Adopt(client_fd, this); }

  void OnData(Sock* s, const char* data, size_t len) override {
    if (s == client_ && !connected_) {  // the hello: hold it until the upstream is up
      hello_.append(data, len);
      // No Pause for the hello itself: a TLS client waits for the server
      // after its ClientHello, and on io_uring a pause costs a cancel and a
      // re-arm. A client that keeps sending is held at kMaxEarlyBytes.
      if (hello_.size() > kMaxEarlyBytes) loop_.Pause(client_);
      if (upstream_ == nullptr) upstream_ = loop_.Connect(upstream_addr_, this);
      return;
    }
    if (!loop_.Send(Peer(s), data, len)) loop_.Pause(s);
  }

  void OnConnected(Sock*, int err) override {
    if (err != 0) return Finish(false);
    connected_ = true;
    loop_.Send(upstream_, hello_.data(), hello_.size());
    hello_.clear();
    hello_.shrink_to_fit();
    if (client_eof_) {
      loop_.ShutdownWrite(upstream_);
    } else {
      loop_.Resume(client_);
    }
  }

  void OnEnd(Sock* s, int err) override {
    if (err != 0) return Finish(false);
    bool& eof = s == client_ ? client_eof_ : upstream_eof_;
    eof = true;
    if (s == client_ && !connected_) {
      if (upstream_ == nullptr) return Finish(false);  // EOF before any byte: nothing to relay
      return;  // OnConnected shuts the upstream's write side after the hello
    }
    loop_.ShutdownWrite(Peer(s));
    if (client_eof_ && upstream_eof_) Finish(true);
  }

  // s caught up: its source may read again.
  void OnDrained(Sock* s) override {
    if (connected_) loop_.Resume(Peer(s));
  }

 private:
  Sock* Peer(Sock* s) const { return s == client_ ? upstream_ : client_; }

  void Finish(bool graceful) {
    loop_.Close(client_, graceful);
    if (upstream_ != nullptr) loop_.Close(upstream_, graceful);
    delete this;
  }

  Loop& loop_;
  sockaddr_in upstream_addr_;
  Sock* client_ = nullptr;
  Sock* upstream_ = nullptr;
  std::string hello_;
  bool connected_ = false;
  bool client_eof_ = false;
  bool upstream_eof_ = false;
};

}  // namespace

void StartSession(Loop& loop, int client_fd, const sockaddr_in& upstream) {
  (new Session(loop, upstream))->Start(client_fd);
}

}  // namespace uring_proto
