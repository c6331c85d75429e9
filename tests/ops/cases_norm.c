/* PLACEHOLDER */
#include "op_cases.h"
const op_case cases_norm[] = {{0}};
