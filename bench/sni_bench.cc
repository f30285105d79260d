// ClientHello parser cost per hello, on the real captures: fed whole, and
// re-recorded into three records fed one record per Feed().
#include <benchmark/benchmark.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "sni/client_hello_parser.h"

namespace {

using Bytes = std::vector<uint8_t>;
using meshgate::sni::ClientHelloParser;
using meshgate::sni::ParseStatus;

const char* const kCaptures[] = {"openssl13_sni.bin", "openssl12_sni.bin", "openssl_nosni.bin",
                                 "curl_sni.bin",      "gnutls_sni.bin",    "python_sni.bin"};

Bytes Load(const std::string& file) {
  std::ifstream in(std::string(MESHGATE_TESTDATA) + "/clienthellos/" + file, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The capture's handshake bytes in `count` records of near-equal size.
std::vector<Bytes> ThreeRecords(const Bytes& capture) {
  Bytes handshake;
  for (size_t at = 0; at + 5 <= capture.size();) {
    const size_t length = (size_t{capture[at + 3]} << 8) | capture[at + 4];
    handshake.insert(handshake.end(), capture.begin() + at + 5, capture.begin() + at + 5 + length);
    at += 5 + length;
  }
  std::vector<Bytes> records;
  const size_t step = (handshake.size() + 2) / 3;
  for (size_t at = 0; at < handshake.size(); at += step) {
    const size_t n = std::min(step, handshake.size() - at);
    Bytes record = {0x16, 0x03, 0x01, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
    record.insert(record.end(), handshake.begin() + at, handshake.begin() + at + n);
    records.push_back(std::move(record));
  }
  return records;
}

void Verify(benchmark::State& state, const ClientHelloParser& parser) {
  if (parser.status() != ParseStatus::kClientHello) state.SkipWithError("capture did not parse");
}

void BM_WholeHello(benchmark::State& state, const char* file) {
  const Bytes capture = Load(file);
  ClientHelloParser parser;  // reused, as a session would after Reset()
  for (auto _ : state) {
    parser.Reset();
    benchmark::DoNotOptimize(parser.Feed(capture));
  }
  Verify(state, parser);
  state.SetBytesProcessed(state.iterations() * capture.size());
}

void BM_ThreeRecords(benchmark::State& state, const char* file) {
  const std::vector<Bytes> records = ThreeRecords(Load(file));
  size_t bytes = 0;
  for (const Bytes& r : records) bytes += r.size();
  ClientHelloParser parser;
  for (auto _ : state) {
    parser.Reset();
    for (const Bytes& r : records) benchmark::DoNotOptimize(parser.Feed(r));
  }
  Verify(state, parser);
  state.SetBytesProcessed(state.iterations() * bytes);
}

void BM_FreshParserWholeHello(benchmark::State& state, const char* file) {
  const Bytes capture = Load(file);
  for (auto _ : state) {
    ClientHelloParser parser;  // includes the per-connection buffer allocation
    benchmark::DoNotOptimize(parser.Feed(capture));
  }
}

const bool kRegistered = [] {
  for (const char* file : kCaptures) {
    benchmark::RegisterBenchmark((std::string("Whole/") + file).c_str(), BM_WholeHello, file);
    benchmark::RegisterBenchmark((std::string("ThreeRecords/") + file).c_str(), BM_ThreeRecords, file);
    benchmark::RegisterBenchmark((std::string("FreshParserWhole/") + file).c_str(),
                                 BM_FreshParserWholeHello, file);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
