// The kernel side of the sockmap relay prototype (issue 17, part 3): an
// sk_skb stream verdict that redirects every skb arriving on one relayed
// socket to its peer through a sockhash, and counts the bytes it redirected
// per socket so user space can tell when the peer has sent them all (EOF).
//
// Attach points and helpers follow Documentation/bpf/map_sockmap.rst
// (BPF_SK_SKB_STREAM_VERDICT / BPF_SK_SKB_STREAM_PARSER on the map,
// bpf_sk_redirect_hash with flags 0 = the peer's egress, BPF_F_INGRESS = the
// peer's receive queue) and the selftests'
// tools/testing/selftests/bpf/progs/test_sockmap_kern.h.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// Relayed sockets, keyed by socket cookie (SO_COOKIE / bpf_get_socket_cookie).
struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, 4096);
  __type(key, __u64);
  __type(value, __u64);
} socks SEC(".maps");

struct side {
  __u64 peer;      // cookie of the socket this one's bytes go to
  __u64 bytes;     // bytes this socket's verdict redirected to the peer
  __u64 skbs;
  __u64 failed;    // redirects the helper refused (no peer in the map)
  __u64 empty;     // zero-length skbs seen (a FIN on its own)
};

// Per relayed socket: where its bytes go, and how many went.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64);
  __type(value, struct side);
} sides SEC(".maps");

// Set by the loader: [0] the redirect flags (0 = egress, BPF_F_INGRESS);
// [1] 1 = keep zero-length skbs on their own socket instead of redirecting.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u64);
} config SEC(".maps");

SEC("sk_skb/stream_verdict")
int relay_verdict(struct __sk_buff *skb) {
  __u64 cookie = bpf_get_socket_cookie(skb);
  struct side *s = bpf_map_lookup_elem(&sides, &cookie);
  if (!s) return SK_PASS;  // not relayed: user space reads it
  __u32 zero = 0, one = 1;
  __u64 *flags = bpf_map_lookup_elem(&config, &zero);
  __u64 *keep_empty = bpf_map_lookup_elem(&config, &one);
  if (skb->len == 0) {
    // A FIN that arrives without data is an skb of its own (tcp_read_skb
    // hands it to the verdict). Redirected to the peer's egress, the backlog
    // sends 0 bytes, and sk_psock_backlog takes a return of 0 as a hard error:
    // sk_psock_report_error(psock, EPIPE) and SK_PSOCK_TX_ENABLED cleared on
    // the peer (net/core/skmsg.c). Passing it keeps it on this socket, where
    // it carries nothing: the FIN itself is already in sk_shutdown.
    __sync_fetch_and_add(&s->empty, 1);
    if (keep_empty && *keep_empty) return SK_PASS;
  }
  __u64 peer = s->peer;
  long verdict = bpf_sk_redirect_hash(skb, &socks, &peer, flags ? *flags : 0);
  if (verdict == SK_PASS) {
    __sync_fetch_and_add(&s->bytes, skb->len);
    __sync_fetch_and_add(&s->skbs, 1);
  } else {
    __sync_fetch_and_add(&s->failed, 1);
  }
  return verdict;
}

// The stream parser variant: every skb is one "message" of its own length,
// so the strparser path (sk_psock_strp_read) runs the same verdict.
SEC("sk_skb/stream_parser")
int relay_parser(struct __sk_buff *skb) { return skb->len; }

char LICENSE[] SEC("license") = "GPL";
