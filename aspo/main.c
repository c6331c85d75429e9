#include <stdio.h>
int main(void) { printf("aspo\n"); return 0; }
