/*
 * mapfilter.c - goal 2 baseline: the generate/map/filter chain of
 * mapfilter.lua as a C loop, calling the three functions through pointers
 * (not inlined), as a lower bound for the per-record cost.
 *
 *   mapfilter [N]    prints the kept count
 */
#include <stdio.h>
#include <stdlib.h>

typedef long long (*gen_fn)(long long);
typedef long long (*map_fn)(long long);
typedef int (*filter_fn)(long long);

__attribute__((noinline)) static long long gen(long long i) { return i; }
__attribute__((noinline)) static long long map(long long x) { return x * 3; }
__attribute__((noinline)) static int filter(long long x) { return x % 2 == 0; }

/* volatile so that the compiler cannot see through the calls */
static gen_fn volatile g = gen;
static map_fn volatile m = map;
static filter_fn volatile f = filter;

int main(int argc, char **argv) {
  long long n = argc > 1 ? atoll(argv[1]) : 10000000LL;
  long long kept = 0, sum = 0;
  for (long long i = 1; i <= n; i++) {
    long long x = m(g(i));
    if (f(x)) {
      kept++;
      sum += x;
    }
  }
  printf("%lld %lld\n", kept, sum);
  return 0;
}
