/* The floor under B4: what any client pays to take and give back a lock on N servers from a
 * fresh process, with no lock logic at all. One thread, non-blocking sockets: it connects to
 * every server, sends each the acquire script (EVALSHA, the bytes in ACQUIRE_FILE), waits for
 * every reply, sends the release script (RELEASE_FILE) and waits again, then exits.
 *
 *     floor ACQUIRE_FILE RELEASE_FILE PORT...
 *
 * Replies are short and come in one read on loopback; an error reply (such as NOSCRIPT, when
 * the scripts are not loaded) fails the run, so that it can never look cheaper than it is. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SERVERS 16

static size_t load(const char *path, char *buf, size_t size) {
    FILE *file = fopen(path, "rb");
    if (!file) { perror(path); exit(2); }
    size_t len = fread(buf, 1, size, file);
    fclose(file);
    return len;
}

/* Sends `request` to every server and waits until each has answered. */
static void round_trip(int *fds, int n, const char *request, size_t len) {
    struct pollfd polls[MAX_SERVERS];
    for (int i = 0; i < n; i++) {
        if (write(fds[i], request, len) != (ssize_t)len) { perror("write"); exit(1); }
        polls[i].fd = fds[i];
        polls[i].events = POLLIN;
    }
    for (int left = n; left > 0;) {
        if (poll(polls, n, 5000) <= 0) { fprintf(stderr, "floor: no reply\n"); exit(1); }
        for (int i = 0; i < n; i++) {
            if (!(polls[i].revents & POLLIN)) continue;
            char reply[4096];
            ssize_t got = read(fds[i], reply, sizeof reply);
            if (got <= 0 || reply[0] == '-') { fprintf(stderr, "floor: bad reply\n"); exit(1); }
            polls[i].fd = -1; /* answered: poll ignores it from now on */
            left--;
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 4 || argc - 3 > MAX_SERVERS) {
        fprintf(stderr, "usage: floor ACQUIRE_FILE RELEASE_FILE PORT...\n");
        return 2;
    }
    static char acquire[65536], release[65536];
    size_t acquire_len = load(argv[1], acquire, sizeof acquire);
    size_t release_len = load(argv[2], release, sizeof release);
    int n = argc - 3, fds[MAX_SERVERS];
    for (int i = 0; i < n; i++) {
        struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3 + i]))};
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        connect(fds[i], (struct sockaddr *)&address, sizeof address);
    }
    /* A connection still being made takes the request once made: wait until each is writable. */
    struct pollfd writable[MAX_SERVERS];
    for (int i = 0; i < n; i++) writable[i] = (struct pollfd){.fd = fds[i], .events = POLLOUT};
    for (int i = 0; i < n; i++) {
        if (poll(&writable[i], 1, 5000) != 1 || (writable[i].revents & (POLLERR | POLLHUP))) {
            fprintf(stderr, "floor: cannot connect to port %s\n", argv[3 + i]);
            return 1;
        }
    }
    round_trip(fds, n, acquire, acquire_len);
    round_trip(fds, n, release, release_len);
    for (int i = 0; i < n; i++) close(fds[i]);
    return 0;
}
