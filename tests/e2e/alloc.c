/* Allocation helper for tests/e2e/qemu_numa.sh, built with `gcc -static` on the host and run
 * inside the guest: maps ANON_MIB MiB of anonymous memory and HUGE_MIB MiB of 2 MiB hugepages
 * (MAP_HUGETLB; 0 for none), writes every page, prints where they are and what it may use,
 * then sleeps until killed so /proc/PID/numa_maps can be read.
 *
 *   alloc ANON_MIB [HUGE_MIB]
 *
 * Output: `alloc pid=P cpu=C anon=ADDR anon_mib=N huge=ADDR|none huge_mib=M` then `ready`.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif

static void touch(char *p, size_t len) {
    for (size_t off = 0; off < len; off += 4096)
        p[off] = (char)(off >> 12 | 1);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: alloc ANON_MIB [HUGE_MIB]\n");
        return 2;
    }
    size_t anon = strtoul(argv[1], NULL, 10) << 20;
    size_t huge = argc > 2 ? strtoul(argv[2], NULL, 10) << 20 : 0;
    char *a = mmap(NULL, anon, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) {
        perror("mmap anon");
        return 1;
    }
    /* 4 KiB pages, so numa_maps counts are exact and independent of THP availability. */
    madvise(a, anon, MADV_NOHUGEPAGE);
    touch(a, anon);
    char *h = NULL;
    if (huge) {
        h = mmap(NULL, huge, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
        if (h == MAP_FAILED) {
            perror("mmap hugetlb");
            h = NULL;
        } else {
            touch(h, huge);
        }
    }
    printf("alloc pid=%d cpu=%d anon=%lx anon_mib=%zu huge=", (int)getpid(), sched_getcpu(),
           (unsigned long)a, anon >> 20);
    if (h)
        printf("%lx", (unsigned long)h);
    else
        printf("none");
    printf(" huge_mib=%zu\nready\n", h ? huge >> 20 : 0);
    fflush(stdout);
    for (;;)
        pause();
}
