// The relay session, written once against Loop (loop.h): read the first bytes
// from the client, connect to the fixed upstream, forward them, then relay
// both ways with half-close (each side's FIN becomes a SHUT_WR on the other
// once everything before it is sent) until both directions ended.
#pragma once

#include <netinet/in.h>

#include <string>

#include "loop.h"

namespace uring_proto {

// Starts a session for an accepted socket; it deletes itself when done.
void StartSession(Loop& loop, int client_fd, const sockaddr_in& upstream);

}  // namespace uring_proto
