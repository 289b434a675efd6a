// Deliberate violations (see tests/layering/bad/model/bad.h): calc/ is pure.
#include <bpf/libbpf.h>
#include "calc/calc.h"
#include "maps/weir_maps.h"
