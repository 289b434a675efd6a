// The one translation unit of weir_bpf_tests that holds the harness definitions (and with them
// the embedded weir_tc object).
#include "tc_harness_impl.h"
