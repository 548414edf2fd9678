// A program that hangs the way a PHP worker does: its main thread sleeps
// in nested functions (printing "tick" after each sleep, "EINTR" if a
// sleep was interrupted), a second thread blocks in read(2) on stdin.
// With the argument "undumpable" it makes itself non-dumpable first, as
// PHP-FPM workers are.
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) void inner_sleep(int n) {
  for (;;) {
    struct timespec ts = {0, 100000000};
    if (nanosleep(&ts, NULL) != 0) {
      printf("EINTR %d\n", errno);
    }
    printf("tick %d\n", n);
    fflush(stdout);
  }
}

__attribute__((noinline)) void middle_sleep(int n) {
  inner_sleep(n + 1);
  __asm__ volatile("");
}

__attribute__((noinline)) void *reader(void *arg) {
  char buf[1];
  if (read(0, buf, 1) < 0) {
    printf("EINTR read %d\n", errno);
  }
  pause();
  return arg;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "undumpable") == 0) {
    prctl(PR_SET_DUMPABLE, 0);
  }
  pthread_t t;
  pthread_create(&t, NULL, reader, NULL);
  printf("ready\n");
  fflush(stdout);
  middle_sleep(1);
  return 0;
}
