/* A crash in a second thread while the main thread waits for it. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

struct job {
	int *result;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	usleep(1000);
	*j->result = 7; /* result was never allocated */
	return NULL;
}

int main(void)
{
	struct job j = {0};
	pthread_t t;
	pthread_create(&t, NULL, worker, &j);
	pthread_join(t, NULL);
	printf("%d\n", *j.result);
	return 0;
}
