/* A NULL compiled pattern passed to pcre2_jit_match: SIGSEGV at 0x20 inside libpcre2 (the lab's FFI crash, without PHP). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
int main(void) {
	pcre2_match_data *md = pcre2_match_data_create(4, NULL);
	int rc = pcre2_jit_match((const pcre2_code *)0, (PCRE2_SPTR)"abc", 3, 0, 0, md, NULL);
	printf("%d\n", rc);
	return 0;
}
