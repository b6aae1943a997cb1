/*
 * /init of the lab's test guests (built statically by `python -m tools.lab install`).
 *
 * Role: be a small, steady, observable workload for live-migration tests.
 *   1. mount /proc and read its settings from /proc/cmdline:
 *        mc.touch_mib=N   MiB of anonymous memory to allocate and touch (default 64)
 *        mc.dirty_pps=N   4 KiB pages to dirty per second, spread over the second (default 1000)
 *        mc.beat_hz=N     heartbeat lines per second, 1 to 50 (default 1)
 *        mc.frozen_mib=N  MiB written once at boot and never again (default 16, 0: none)
 *   2. touch that memory once, then forever: dirty pages at the given rate and print
 *      beat_hz heartbeat lines per second on /dev/console (the serial port), each with
 *      the verdict of the memory checks so far:
 *        mc-heartbeat seq=17 touched_mib=64 dirty_pps=1000 check=ok
 *   3. check its memory all the time, a slice at each 20 ms tick, the whole of it about
 *      every CHECK_ROUND_S seconds, and print one line per round:
 *        mc-check round=4 ok frozen_mib=16 touched_mib=64 crc=89abcdef
 *        mc-check round=5 CORRUPT region=dirty page=812 expected=... found=...
 *      check= is "none" before the first round and "CORRUPT" for ever once any check
 *      failed.
 *
 * What is checked, and why it catches a migration that delivered wrong memory:
 *   - the frozen region: every 64-bit word holds a function of its index, written at
 *     boot; a round recomputes the region's checksum (FNV-1a of the words) and
 *     compares each word. A page lost, zeroed or taken from another page fails.
 *   - the dirtied region: each dirtied page p carries in its first two words a
 *     generation g and (~g ^ p), and g is also kept in an array gen[p] (in guest memory
 *     too); the rest of the page keeps its boot fill byte. A page delivered stale (an
 *     older generation) disagrees with gen[] (or gen[] with it), a torn or foreign page
 *     breaks the (~g ^ p) pair or the fill. Both copies migrate; at the switch-over they
 *     must agree, whatever pass each was sent in.
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
#define WORDS_PER_PAGE (PAGE_SIZE / sizeof(uint64_t))
#define TICKS_PER_SECOND 50UL /* dirtying is spread over 50 slices of 20 ms */
#define NSEC_PER_SEC 1000000000LL
#define CHECK_ROUND_S 2UL     /* seconds one round of checks over all of memory takes */
#define MAX_BEAT_HZ 50UL

/* The memory under check (single-threaded: no locking). */
static uint64_t *frozen;
static unsigned long frozen_words, frozen_cursor;
static uint64_t frozen_crc, frozen_crc_expected;
static unsigned char *mem;
static uint32_t *gen;
static unsigned long npages, check_cursor;
static unsigned long check_round;
static const char *verdict = "none";
static int round_failed;

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

static uint64_t frozen_word(unsigned long i)
{
    uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ULL + 0x5DEECE66DULL;

    x ^= x >> 29;
    return x | 1; /* never zero: QEMU would send zero pages for free */
}

static uint64_t fnv1a(uint64_t hash, uint64_t word)
{
    for (int b = 0; b < 8; b++) {
        hash ^= (word >> (8 * b)) & 0xff;
        hash *= 0x100000001B3ULL;
    }
    return hash;
}

static unsigned char fill_byte(unsigned long page)
{
    return (unsigned char)((page % 251) + 1);
}

static void corrupt(const char *region, unsigned long page, uint64_t expected, uint64_t found)
{
    if (!round_failed)
        say("mc-check round=%lu CORRUPT region=%s page=%lu expected=%016llx found=%016llx\n",
            check_round + 1, region, page, (unsigned long long)expected,
            (unsigned long long)found);
    round_failed = 1;
    verdict = "CORRUPT";
}

/* Dirty page p: a new generation, written to the page and remembered in gen[]. */
static void dirty_page(unsigned long p)
{
    uint64_t *words = (uint64_t *)(mem + p * PAGE_SIZE);
    uint32_t g = ++gen[p];

    words[0] = g;
    words[1] = ~(uint64_t)g ^ p;
}

static void check_page(unsigned long p)
{
    const uint64_t *words = (const uint64_t *)(mem + p * PAGE_SIZE);
    uint64_t fill;

    memset(&fill, fill_byte(p), sizeof(fill));
    if (gen[p] == 0) {
        if (words[0] != fill || words[1] != fill)
            corrupt("dirty", p, fill, words[0] != fill ? words[0] : words[1]);
    } else if (words[0] != gen[p] || words[1] != (~(uint64_t)gen[p] ^ p)) {
        corrupt("dirty", p, gen[p], words[0]);
    }
    for (unsigned long w = 2; w < WORDS_PER_PAGE; w += 63)
        if (words[w] != fill)
            corrupt("dirty", p, fill, words[w]);
}

/* One tick's share of the checks; prints a line when a round is complete. */
static void check_slice(unsigned long frozen_per_tick, unsigned long pages_per_tick)
{
    for (unsigned long i = 0; i < frozen_per_tick && frozen_cursor < frozen_words; i++) {
        uint64_t word = frozen[frozen_cursor];

        if (word != frozen_word(frozen_cursor))
            corrupt("frozen", frozen_cursor * sizeof(uint64_t) / PAGE_SIZE,
                    frozen_word(frozen_cursor), word);
        frozen_crc = fnv1a(frozen_crc, word);
        frozen_cursor++;
    }
    for (unsigned long i = 0; i < pages_per_tick && check_cursor < npages; i++)
        check_page(check_cursor++);
    if (frozen_cursor < frozen_words || check_cursor < npages)
        return;
    check_round++;
    if (frozen_crc != frozen_crc_expected)
        corrupt("frozen", 0, frozen_crc_expected, frozen_crc);
    if (!round_failed) {
        if (verdict[0] != 'C')
            verdict = "ok";
        say("mc-check round=%lu ok frozen_mib=%lu touched_mib=%lu crc=%08lx\n", check_round,
            frozen_words * sizeof(uint64_t) >> 20, npages * PAGE_SIZE >> 20,
            (unsigned long)(frozen_crc & 0xffffffffUL));
    }
    round_failed = 0;
    frozen_cursor = check_cursor = 0;
    frozen_crc = 0xcbf29ce484222325ULL;
}

int main(void)
{
    char cmdline[4096];
    unsigned long touch_mib, dirty_pps, beat_hz, frozen_mib, cursor = 0, seq = 0;
    unsigned long frozen_per_tick = 0, pages_per_tick = 0;
    int64_t second_start;

    open_console();
    read_cmdline(cmdline, sizeof(cmdline));
    touch_mib = cmdline_ulong(cmdline, "mc.touch_mib", 64);
    dirty_pps = cmdline_ulong(cmdline, "mc.dirty_pps", 1000);
    beat_hz = cmdline_ulong(cmdline, "mc.beat_hz", 1);
    frozen_mib = cmdline_ulong(cmdline, "mc.frozen_mib", 16);
    if (beat_hz < 1)
        beat_hz = 1;
    if (beat_hz > MAX_BEAT_HZ)
        beat_hz = MAX_BEAT_HZ;

    if (frozen_mib > 0) {
        size_t bytes = frozen_mib * 1024UL * 1024UL;

        frozen = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (frozen == MAP_FAILED) {
            say("mc-error cannot allocate %lu frozen MiB: %s\n", frozen_mib, strerror(errno));
            frozen = NULL;
        } else {
            frozen_words = bytes / sizeof(uint64_t);
            frozen_crc_expected = 0xcbf29ce484222325ULL;
            for (unsigned long i = 0; i < frozen_words; i++) {
                frozen[i] = frozen_word(i);
                frozen_crc_expected = fnv1a(frozen_crc_expected, frozen[i]);
            }
        }
    }
    frozen_crc = 0xcbf29ce484222325ULL;

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
                memset(mem + i * PAGE_SIZE, fill_byte(i), PAGE_SIZE);
            gen = calloc(npages, sizeof(*gen));
            if (gen == NULL) {
                say("mc-error cannot allocate the generations of %lu pages\n", npages);
                npages = 0;
            }
        }
    }
    /* A round of checks over all of memory takes about CHECK_ROUND_S seconds. */
    frozen_per_tick = frozen_words / (CHECK_ROUND_S * TICKS_PER_SECOND) + 1;
    pages_per_tick = npages / (CHECK_ROUND_S * TICKS_PER_SECOND) + 1;
    say("mc-init ready touched_mib=%lu dirty_pps=%lu beat_hz=%lu frozen_mib=%lu\n", touch_mib,
        dirty_pps, beat_hz, frozen ? frozen_mib : 0UL);

    second_start = now_ns();
    for (;;) {
        for (unsigned long tick = 0; tick < TICKS_PER_SECOND; tick++) {
            /* Pages for this slice: an even share of dirty_pps, remainders spread too. */
            unsigned long todo = dirty_pps * (tick + 1) / TICKS_PER_SECOND -
                                 dirty_pps * tick / TICKS_PER_SECOND;

            /* beat_hz lines per second, at the ticks where the count of beats due grows. */
            if (tick == 0 || (tick * beat_hz) / TICKS_PER_SECOND !=
                             ((tick - 1) * beat_hz) / TICKS_PER_SECOND) {
                seq++;
                say("mc-heartbeat seq=%lu touched_mib=%lu dirty_pps=%lu check=%s\n", seq,
                    touch_mib, dirty_pps, verdict);
            }
            for (unsigned long i = 0; npages > 0 && i < todo; i++) {
                dirty_page(cursor);
                cursor = (cursor + 1) % npages;
            }
            check_slice(frozen_per_tick, pages_per_tick);
            sleep_until(second_start + (int64_t)(tick + 1) * NSEC_PER_SEC / (int64_t)TICKS_PER_SECOND);
        }
        second_start += NSEC_PER_SEC;
        if (now_ns() - second_start > NSEC_PER_SEC)
            second_start = now_ns();
    }
    return 0; /* not reached */
}
