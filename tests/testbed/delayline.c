/* delayline: hold every packet that enters a TUN device for a fixed time, then hand it back.
 *
 * Usage: delayline TUN:DELAY_US [TUN:DELAY_US ...]
 *   Creates each TUN device (in the caller's network namespace), prints "ready" on stdout once
 *   all exist, and from then on writes every packet read from a TUN back into the same TUN
 *   DELAY_US microseconds after it arrived.  The router routes one direction of traffic into
 *   each TUN (see netlab.py), so each TUN is one direction and gets its own thread.
 *
 * Speed: the TUNs are opened with IFF_VNET_HDR and TUNSETOFFLOAD (checksum + TSO4/6), so the
 *   kernel hands over GSO super-packets of up to 64 KB with a virtio_net_hdr in front; one
 *   read/write then moves dozens of TCP segments, which keeps up with ~1 Gbit/s where a
 *   per-packet loop stalls near 750 Mbit/s.  The header is written back unchanged.
 *
 * Memory is bounded: each direction has one fixed arena of ARENA_BYTES for packet bytes and a
 *   fixed ring of MAX_RECORDS (arrival-ordered) records.  When either is full the packet is read
 *   and DROPPED, as a real link drops what it cannot hold; drops are counted and printed at exit.
 *
 * Exit: on SIGTERM/SIGINT/SIGHUP, and when the parent dies (PR_SET_PDEATHSIG sends SIGTERM).
 *   The TUN devices are not persistent, so they vanish with the process.
 * Build: gcc -O2 -pthread -o delayline delayline.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINES 4
#define ARENA_BYTES (16u << 20)                       /* 16 MB: 128 ms of 1 Gbit/s per direction */
#define MAX_RECORDS 65536u                            /* power of two: ring index = count & mask */
#define PKT_MAX (65536u + 512u)                       /* vnet header + largest GSO packet; 16 | it */
#define READ_BATCH 64                                 /* reads per wake-up, then due writes again */

struct record { int64_t due_ns; uint32_t offset, len; };

struct line {                     /* one direction: one TUN, one thread, one ring */
    char name[IFNAMSIZ];
    int fd;
    int64_t delay_ns;
    unsigned char *arena;
    uint32_t fill;                /* arena offset where the next packet is read to */
    struct record ring[MAX_RECORDS];
    uint64_t head, tail;          /* records [head, tail) are waiting; only this thread touches them */
    unsigned char drop[PKT_MAX];  /* where packets that find no room are read to */
    volatile uint64_t forwarded, dropped, failed;
};

static struct line lines[MAX_LINES];

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Where PKT_MAX contiguous free bytes start in the arena, or -1 when the line is full.
   Live bytes run circularly from the oldest record's offset up to l->fill; all offsets are
   multiples of 16, and the strict "<" keep fill != oldest while records wait (no ambiguity). */
static int64_t room(struct line *l) {
    if (l->tail - l->head >= MAX_RECORDS) return -1;
    if (l->head == l->tail) return 0;                         /* empty: restart at the front */
    uint32_t oldest = l->ring[l->head & (MAX_RECORDS - 1)].offset;
    if (l->fill >= oldest) {                                  /* live data is [oldest, fill) */
        if (l->fill + PKT_MAX <= ARENA_BYTES) return (int64_t)l->fill;
        return PKT_MAX < oldest ? 0 : -1;                     /* wrap to the front if it is free */
    }
    return l->fill + PKT_MAX < oldest ? (int64_t)l->fill : -1; /* wrapped: free is [fill, oldest) */
}

static void *run_line(void *arg) {
    struct line *l = arg;
    for (;;) {
        /* 1. Hand back every packet whose time has come. */
        int64_t now = now_ns();
        while (l->head != l->tail && l->ring[l->head & (MAX_RECORDS - 1)].due_ns <= now) {
            struct record *r = &l->ring[l->head & (MAX_RECORDS - 1)];
            /* A failed write loses that packet; only the first failure is printed, so that stderr
               (a pipe nobody may read until exit) can never fill up and stall the line. */
            if (write(l->fd, l->arena + r->offset, r->len) < 0 && l->failed++ == 0)
                perror("delayline: write");
            l->head++;
            l->forwarded++;
        }
        /* 2. Sleep until a packet arrives or the oldest one is due (no timeout when empty). */
        struct timespec timeout, *wait = NULL;
        if (l->head != l->tail) {
            int64_t left = l->ring[l->head & (MAX_RECORDS - 1)].due_ns - now_ns();
            if (left < 0) left = 0;
            timeout.tv_sec = left / 1000000000;
            timeout.tv_nsec = left % 1000000000;
            wait = &timeout;
        }
        struct pollfd pfd = { .fd = l->fd, .events = POLLIN };
        int ready = ppoll(&pfd, 1, wait, NULL);
        if (ready < 0 && errno != EINTR) { perror("delayline: ppoll"); exit(1); }
        if (ready <= 0 || !(pfd.revents & POLLIN)) continue;
        /* 3. Take in what arrived, stamping each packet with its due time. */
        for (int i = 0; i < READ_BATCH; i++) {
            int64_t at = room(l);
            unsigned char *into = at < 0 ? l->drop : l->arena + at;
            ssize_t n = read(l->fd, into, PKT_MAX);           /* fd is non-blocking */
            if (n <= 0) break;                                /* EAGAIN: nothing more for now */
            if (at < 0) { l->dropped++; continue; }           /* no room: the packet is dropped */
            l->ring[l->tail & (MAX_RECORDS - 1)] =
                (struct record){ now_ns() + l->delay_ns, (uint32_t)at, (uint32_t)n };
            l->tail++;
            l->fill = (uint32_t)at + (((uint32_t)n + 15) & ~15u); /* keep records 16-byte aligned */
        }
    }
    return NULL;
}

static int open_tun(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) { perror("delayline: open /dev/net/tun"); return -1; }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;      /* raw IP, virtio_net_hdr in front */
    memcpy(ifr.ifr_name, name, strnlen(name, IFNAMSIZ - 1));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { perror("delayline: TUNSETIFF"); return -1; }
    /* Accept GSO super-packets and unchecksummed ones: the big speed-up (see the top). */
    if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0) {
        perror("delayline: TUNSETOFFLOAD"); return -1;
    }
    return fd;
}

int main(int argc, char **argv) {
    int count = argc - 1;
    if (count < 1 || count > MAX_LINES) {
        fprintf(stderr, "usage: %s TUN:DELAY_US [TUN:DELAY_US ...] (at most %d)\n", argv[0], MAX_LINES);
        return 2;
    }
    /* Die with the parent; then handle termination signals only in main's sigwait below. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) return 1;                             /* the parent already died */
    prctl(PR_SET_TIMERSLACK, 1000UL);                         /* wake within ~1 µs of a due time */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM); sigaddset(&stop, SIGINT); sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);                  /* threads inherit the mask */

    for (int i = 0; i < count; i++) {
        struct line *l = &lines[i];
        char *colon = strrchr(argv[i + 1], ':');
        long long us = colon ? atoll(colon + 1) : -1;
        if (!colon || colon == argv[i + 1] || colon - argv[i + 1] >= IFNAMSIZ || us < 0) {
            fprintf(stderr, "delayline: bad argument %s (want TUN:DELAY_US)\n", argv[i + 1]);
            return 2;
        }
        memcpy(l->name, argv[i + 1], (size_t)(colon - argv[i + 1]));
        l->delay_ns = us * 1000;
        if ((l->fd = open_tun(l->name)) < 0) return 1;
        if (!(l->arena = malloc(ARENA_BYTES))) { perror("delayline: malloc"); return 1; }
    }
    for (int i = 0; i < count; i++) {
        pthread_t thread;
        if ((errno = pthread_create(&thread, NULL, run_line, &lines[i]))) {
            perror("delayline: pthread_create"); return 1;
        }
    }
    printf("ready\n");
    fflush(stdout);

    int sig;
    sigwait(&stop, &sig);
    for (int i = 0; i < count; i++)
        fprintf(stderr, "delayline %s: forwarded %llu dropped %llu failed %llu\n", lines[i].name,
                (unsigned long long)lines[i].forwarded, (unsigned long long)lines[i].dropped,
                (unsigned long long)lines[i].failed);
    return 0;                                                 /* exit() ends the threads too */
}
