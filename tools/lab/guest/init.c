/*
 * /init of the lab's test guests (built statically by `python -m tools.lab install`).
 *
 * Role: be a small, steady, observable workload for live-migration tests.
 *   1. mount /proc and read its settings from /proc/cmdline:
 *        mc.touch_mib=N   MiB of anonymous memory to allocate and touch (default 64)
 *        mc.dirty_pps=N   4 KiB pages to dirty per second, spread over the second (default 1000)
 *   2. touch that memory once, then forever: dirty pages at the given rate and print one
 *      heartbeat line per second on /dev/console (the serial port):
 *        mc-heartbeat seq=17 touched_mib=64 dirty_pps=1000
 *
 * It is PID 1: it never exits (an exiting init panics the kernel). On any error it prints an
 * "mc-error" line and keeps printing heartbeats with what it could set up.
 *
 * Concurrency: single-threaded; the pace comes from clock_nanosleep(TIMER_ABSTIME) on
 * CLOCK_MONOTONIC so the dirty rate and the heartbeat do not drift. If the guest falls more
 * than a second behind (a paused or slow vCPU, e.g. during migration), the schedule restarts
 * from "now" instead of bursting to catch up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SIZE 4096UL
#define TICKS_PER_SECOND 50UL /* dirtying is spread over 50 slices of 20 ms */
#define NSEC_PER_SEC 1000000000LL

static int console_fd = 1;

static void say(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    /* One write() per line: lines from the kernel and from us never interleave mid-line. */
    while (write(console_fd, line, (size_t)n) < 0 && errno == EINTR)
        ;
}

static void open_console(void)
{
    int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);

    if (fd >= 0)
        console_fd = fd;
}

/* Value of "key=" on the kernel command line, or fallback when absent or malformed. */
static unsigned long cmdline_ulong(const char *cmdline, const char *key, unsigned long fallback)
{
    size_t klen = strlen(key);
    const char *p = cmdline;

    while ((p = strstr(p, key)) != NULL) {
        int at_word_start = (p == cmdline) || p[-1] == ' ';

        if (at_word_start && p[klen] == '=') {
            char *end;
            unsigned long v;

            errno = 0;
            v = strtoul(p + klen + 1, &end, 10);
            if (errno == 0 && end != p + klen + 1 && (*end == ' ' || *end == '\n' || *end == '\0'))
                return v;
            say("mc-error bad value for %s, using %lu\n", key, fallback);
            return fallback;
        }
        p += klen;
    }
    return fallback;
}

static void read_cmdline(char *buf, size_t size)
{
    int fd;
    ssize_t n;

    buf[0] = '\0';
    mkdir("/proc", 0555);
    if (mount("proc", "/proc", "proc", 0, NULL) < 0 && errno != EBUSY)
        say("mc-error mount /proc: %s\n", strerror(errno));
    fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        say("mc-error open /proc/cmdline: %s\n", strerror(errno));
        return;
    }
    n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static void sleep_until(int64_t deadline_ns)
{
    struct timespec ts = {
        .tv_sec = deadline_ns / NSEC_PER_SEC,
        .tv_nsec = deadline_ns % NSEC_PER_SEC,
    };

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

int main(void)
{
    char cmdline[4096];
    unsigned long touch_mib, dirty_pps, npages = 0, cursor = 0, seq = 0;
    unsigned char *mem = NULL;
    int64_t second_start;

    open_console();
    read_cmdline(cmdline, sizeof(cmdline));
    touch_mib = cmdline_ulong(cmdline, "mc.touch_mib", 64);
    dirty_pps = cmdline_ulong(cmdline, "mc.dirty_pps", 1000);

    if (touch_mib > 0) {
        size_t bytes = touch_mib * 1024UL * 1024UL;

        mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) {
            say("mc-error cannot allocate %lu MiB: %s\n", touch_mib, strerror(errno));
            mem = NULL;
            touch_mib = 0;
        } else {
            npages = bytes / PAGE_SIZE;
            /* Non-zero content: QEMU migrates zero pages almost for free. */
            for (unsigned long i = 0; i < npages; i++)
                memset(mem + i * PAGE_SIZE, (int)(i % 251) + 1, PAGE_SIZE);
        }
    }
    say("mc-init ready touched_mib=%lu dirty_pps=%lu\n", touch_mib, dirty_pps);

    second_start = now_ns();
    for (;;) {
        seq++;
        say("mc-heartbeat seq=%lu touched_mib=%lu dirty_pps=%lu\n", seq, touch_mib, dirty_pps);
        for (unsigned long tick = 0; tick < TICKS_PER_SECOND; tick++) {
            /* Pages for this slice: an even share of dirty_pps, remainders spread too. */
            unsigned long todo = dirty_pps * (tick + 1) / TICKS_PER_SECOND -
                                 dirty_pps * tick / TICKS_PER_SECOND;

            for (unsigned long i = 0; npages > 0 && i < todo; i++) {
                uint64_t *word = (uint64_t *)(mem + cursor * PAGE_SIZE);

                word[(seq + i) % (PAGE_SIZE / sizeof(uint64_t))] = (seq << 32) ^ cursor ^ i;
                cursor = (cursor + 1) % npages;
            }
            sleep_until(second_start + (int64_t)(tick + 1) * NSEC_PER_SEC / (int64_t)TICKS_PER_SECOND);
        }
        second_start += NSEC_PER_SEC;
        if (now_ns() - second_start > NSEC_PER_SEC)
            second_start = now_ns();
    }
    return 0; /* not reached */
}
