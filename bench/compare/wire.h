// The tiny protocol between bulk_client and byte_sink (bench/compare/).
//
// client -> sink:  one TLS record (the ClientHello, for the proxy's SNI
//                  routing; the sink skips it by its record length), then a
//                  16-byte header: "MGB1", mode, 3 zero bytes, N (u64 big endian).
//   mode 'U' (upload): the client sends N bytes; the sink answers with the
//                      count it received (u64 BE) once it has all N.
//   mode 'D' (download): the sink sends N bytes, then shuts down its write side.
//   mode 'I' (idle): the sink answers one byte 'R' and then just holds the
//                    connection until the client closes it.
// The sink never sends anything before the header, so the proxies see a plain
// "client speaks first" TLS-looking connection.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace bench {

inline constexpr char kMagic[4] = {'M', 'G', 'B', '1'};
inline constexpr size_t kHeaderSize = 16;
inline constexpr size_t kRecordHeaderSize = 5;  // TLS: type, version(2), length(2)
inline constexpr uint8_t kHandshakeRecord = 0x16;

inline void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) { p[i] = static_cast<uint8_t>(v); v >>= 8; }
}
inline uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}
inline void MakeHeader(uint8_t out[kHeaderSize], char mode, uint64_t n) {
  std::memcpy(out, kMagic, 4);
  out[4] = static_cast<uint8_t>(mode);
  out[5] = out[6] = out[7] = 0;
  PutU64(out + 8, n);
}

// "IPv4:PORT" -> out; false when it is not one.
inline bool ParseAddr(const std::string& s, sockaddr_in& out) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  std::memset(&out, 0, sizeof out);
  out.sin_family = AF_INET;
  out.sin_port = htons(static_cast<uint16_t>(std::atoi(s.c_str() + colon + 1)));
  return inet_pton(AF_INET, s.substr(0, colon).c_str(), &out.sin_addr) == 1;
}

}  // namespace bench
