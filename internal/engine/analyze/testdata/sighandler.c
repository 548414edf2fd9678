#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <sys/prctl.h>
static volatile int ready;
__attribute__((noinline)) void inner_wait(void) { ready = 1; printf("ready\n"); fflush(stdout); for (;;) pause(); }
__attribute__((noinline)) void handler(int sig) { (void)sig; inner_wait(); }
__attribute__((noinline)) void busy_loop(void) { for (;;) { __asm__ volatile("" ::: "memory"); } }
int main(void) {
  /* Let gdb -p (a sibling, not a parent) attach under Yama's ptrace_scope 1, as a non-root user. */
  prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
  signal(SIGUSR1, handler);
  printf("pid %d\n", getpid()); fflush(stdout);
  busy_loop();
  return 0;
}
