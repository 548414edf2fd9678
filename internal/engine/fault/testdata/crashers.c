/* crashers.c: small programs that really crash, for fault's tests.
 *
 * `crashers SCENARIO` installs a handler for the fatal signals (on an
 * alternate stack, so that a stack overflow can be reported too), then
 * crashes the way SCENARIO says. The handler prints what a core file would
 * hold: the siginfo, the registers of the faulting context, 16 bytes at rip,
 * a backtrace (the handler, the signal trampoline, then the interrupted
 * frames) and /proc/self/maps; then it exits.
 *
 * Build: gcc -O2 -no-pie -rdynamic -fno-omit-frame-pointer -pthread -o crashers crashers.c
 */
#define _GNU_SOURCE
#include <assert.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

struct item {
	long a, b;
	int count;
	struct item *next;
};

static void out(const char *s) { (void)!write(1, s, strlen(s)); }

static void outhex(const char *name, unsigned long v) {
	char buf[64];
	snprintf(buf, sizeof buf, "%s %lx\n", name, v);
	out(buf);
}

static void handler(int sig, siginfo_t *si, void *ctx) {
	ucontext_t *uc = ctx;
	greg_t *g = uc->uc_mcontext.gregs;
	char buf[256];
	snprintf(buf, sizeof buf, "signal %d %d %lx %d %d\n", sig, si->si_code,
		 (unsigned long)si->si_addr, (int)si->si_pid, (int)si->si_uid);
	out(buf);
	static const struct { const char *n; int i; } regs[] = {
		{"rax", REG_RAX}, {"rbx", REG_RBX}, {"rcx", REG_RCX}, {"rdx", REG_RDX},
		{"rsi", REG_RSI}, {"rdi", REG_RDI}, {"rbp", REG_RBP}, {"rsp", REG_RSP},
		{"r8", REG_R8},   {"r9", REG_R9},   {"r10", REG_R10}, {"r11", REG_R11},
		{"r12", REG_R12}, {"r13", REG_R13}, {"r14", REG_R14}, {"r15", REG_R15},
		{"rip", REG_RIP}, {"eflags", REG_EFL},
	};
	for (size_t i = 0; i < sizeof regs / sizeof regs[0]; i++) {
		snprintf(buf, sizeof buf, "reg %s", regs[i].n);
		outhex(buf, (unsigned long)g[regs[i].i]);
	}
	unsigned long fsbase = 0;
	__asm__ volatile("rdfsbase %0" : "=r"(fsbase));
	outhex("reg fs_base", fsbase);
	/* 16 bytes at rip; write() into a pipe fails with EFAULT instead of
	 * faulting when rip is not readable. */
	int p[2];
	unsigned char code[16];
	if (pipe(p) == 0 && write(p[1], (void *)g[REG_RIP], 16) == 16 && read(p[0], code, 16) == 16) {
		out("code");
		for (int i = 0; i < 16; i++) {
			snprintf(buf, sizeof buf, " %02x", code[i]);
			out(buf);
		}
		out("\n");
	}
	{
		void *frames[64];
		int n = backtrace(frames, 64);
		out("frames\n");
		backtrace_symbols_fd(frames, n, 1);
		out("end frames\n");
	}
	out("maps\n");
	int fd = open("/proc/self/maps", O_RDONLY);
	ssize_t r;
	while ((r = read(fd, buf, sizeof buf)) > 0)
		(void)!write(1, buf, r);
	out("end maps\n");
	_exit(0);
}

/* Each crash is a separate non-inlined function so that the test can look
 * it up by name and read its real instructions. */
__attribute__((noinline)) int null_arg(struct item *it) { return it->count; }
__attribute__((noinline)) long walk(struct item *it) {
	long s = 0;
	while (it->count) {
		s += it->a;
		it = it->next;
	}
	return s;
}
__attribute__((noinline)) void write_rodata(char *s) { s[1] = 'X'; }
__attribute__((noinline)) long deref(long *p) { return *p; }
__attribute__((noinline)) long recurse(long n) {
	volatile char pad[256];
	pad[0] = (char)n;
	return recurse(n + 1) + pad[0];
}
__attribute__((noinline)) int divide(int a, int b) { return a / b; }
__attribute__((noinline)) void check(int x) { assert(x > 0); }
__attribute__((noinline)) void trap(int x) {
	if (x)
		__builtin_trap();
}
__attribute__((noinline)) void aligned_store(char *p) {
	__asm__ volatile("pxor %%xmm0, %%xmm0\n\tmovaps %%xmm0, (%0)" : : "r"(p) : "xmm0", "memory");
}

static struct item items[2];

/* A thread with a small stack that recurses into its guard page. */
static void *deep_thread(void *arg) {
	static char altstack[65536];
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
	sigaltstack(&ss, NULL);
	return (void *)recurse((long)arg);
}

int main(int argc, char **argv) {
	static char altstack[65536];
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
	sigaltstack(&ss, NULL);
	struct sigaction sa = {.sa_sigaction = handler, .sa_flags = SA_SIGINFO | SA_ONSTACK};
	int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
	if (argc < 2)
		return 2;
	const char *s = argv[1];
	volatile long zero = 0;
	if (!strcmp(s, "null-arg")) {
		int r = null_arg((struct item *)zero);
		return r + 1; /* not a tail call: main stays the caller */
	}
	if (!strcmp(s, "null-walk")) {
		items[0].count = 1;
		return (int)walk(items);
	}
	if (!strcmp(s, "rodata"))
		write_rodata((char *)"constant");
	if (!strcmp(s, "wild"))
		return (int)deref((long *)0x7e0000001000);
	if (!strcmp(s, "noncanonical"))
		return (int)deref((long *)0xdead00000000beefUL);
	if (!strcmp(s, "stack"))
		return (int)recurse(zero);
	if (!strcmp(s, "divide"))
		return divide(1, (int)zero);
	if (!strcmp(s, "abort"))
		check((int)zero);
	if (!strcmp(s, "trap"))
		trap(1);
	if (!strcmp(s, "null-call")) {
		void (*fn)(void) = (void (*)(void))zero;
		fn();
	}
	if (!strcmp(s, "exec-data")) {
		static unsigned char data[64] = {0xc3};
		((void (*)(void))data)();
	}
	if (!strcmp(s, "kill"))
		kill(getpid(), SIGSEGV);
	if (!strcmp(s, "misaligned")) {
		static char buf[64] __attribute__((aligned(16)));
		aligned_store(buf + 8);
	}
	if (!strcmp(s, "sigbus")) {
		char path[] = "/tmp/crashers-XXXXXX";
		int fd = mkstemp(path);
		unlink(path);
		(void)!ftruncate(fd, 8192);
		volatile char *m = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
		(void)!ftruncate(fd, 0);
		return m[4096];
	}
	if (!strcmp(s, "thread-stack")) {
		pthread_attr_t attr;
		pthread_t th;
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 256 << 10);
		pthread_create(&th, &attr, deep_thread, NULL);
		pthread_join(th, NULL);
	}
	if (!strcmp(s, "free")) {
		char *volatile p = malloc(32);
		free(p);
		free(p);
	}
	return 3;
}
