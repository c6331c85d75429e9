/* PLACEHOLDER */
#include "op_cases.h"
const op_case cases_rope[] = {{0}};
