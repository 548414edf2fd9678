/* threads.c: a process with several threads running PHP at once, each with
 * its own TSRM block, as FrankenPHP or a threaded Apache run them, built on
 * a thread-safe (ZTS) libphp with the embed SAPI (lab/zts-embed/build.sh). One
 * thread sleeps in PHP (wait_here() -> usleep()), another one calls the
 * internal function crash_now() from PHP (boom() -> crash_now()), which
 * writes through NULL: the core has two PHP threads, the crashed one and
 * one more. labtest.ZTSThreads builds and crashes it. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <sapi/embed/php_embed.h>

ZEND_BEGIN_ARG_INFO_EX(arginfo_crash_now, 0, 0, 1)
	ZEND_ARG_INFO(0, why)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_INFO_EX(arginfo_mark_sleeping, 0, 0, 0)
ZEND_END_ARG_INFO()

static volatile int sleeping;

ZEND_FUNCTION(crash_now)
{
	zend_string *why;
	ZEND_PARSE_PARAMETERS_START(1, 1)
		Z_PARAM_STR(why)
	ZEND_PARSE_PARAMETERS_END();
	fprintf(stderr, "crash_now(%s)\n", ZSTR_VAL(why));
	*(volatile int *)0 = 1;
}

ZEND_FUNCTION(mark_sleeping)
{
	ZEND_PARSE_PARAMETERS_NONE();
	sleeping = 1;
}

static const zend_function_entry host_functions[] = {
	ZEND_FE(crash_now, arginfo_crash_now)
	ZEND_FE(mark_sleeping, arginfo_mark_sleeping)
	ZEND_FE_END
};

/* run runs code as a request of a thread of its own (its own TSRM block);
 * the host functions are registered in that thread's function table
 * (php_embed_init sets the SAPI's additional functions itself). */
static void run(const char *name, const char *code)
{
	ts_resource(0);
	if (php_request_startup() == FAILURE) {
		fprintf(stderr, "%s: request startup failed\n", name);
		return;
	}
	zend_register_functions(NULL, host_functions, CG(function_table), MODULE_PERSISTENT);
	if (zend_eval_string_ex((char *)code, NULL, (char *)name, 1) == FAILURE)
		fprintf(stderr, "%s: eval failed\n", name);
	php_output_end_all();
	php_request_shutdown(NULL);
	sleeping = -1; /* never reached by the crasher: the test then fails fast */
}

static void *sleeper(void *arg)
{
	(void)arg;
	run("sleeper.php",
	    "function wait_here($n) {\n"
	    "    mark_sleeping();\n"
	    "    while (true) { usleep(100000); }\n"
	    "}\n"
	    "wait_here(7);\n");
	return NULL;
}

static void *crasher(void *arg)
{
	(void)arg;
	while (sleeping == 0)
		usleep(10000);
	if (sleeping < 0)
		return NULL;
	usleep(100000);
	run("crasher.php",
	    "function boom($what) {\n"
	    "    crash_now($what);\n"
	    "}\n"
	    "boom('thread two');\n");
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t a, b;
	if (php_embed_init(argc, argv) == FAILURE)
		return 1;
	pthread_create(&a, NULL, sleeper, NULL);
	pthread_create(&b, NULL, crasher, NULL);
	pthread_join(b, NULL);
	pthread_join(a, NULL);
	php_embed_shutdown();
	return 0;
}
