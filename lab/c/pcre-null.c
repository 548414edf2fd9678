/* NULL compiled pattern to pcre2_jit_match: the incident's fault, natively. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <string.h>

static const pcre2_code *cached_pattern(const char *name)
{
	(void)name;
	return NULL; /* the cache lookup failed and nobody checked */
}

int main(int argc, char **argv)
{
	const char *subject = argc > 1 ? argv[1] : "teacher";
	pcre2_match_data *md = pcre2_match_data_create(8, NULL);
	int rc = pcre2_jit_match(cached_pattern("search"), (PCRE2_SPTR)subject, strlen(subject), 0, 0, md, NULL);
	printf("%d\n", rc);
	return 0;
}
