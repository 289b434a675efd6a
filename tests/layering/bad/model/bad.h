// A deliberate layering violation: the test `layering_catches_bad_include` runs
// cmake/check_layering.cmake on this directory and expects it to be reported.
#pragma once
#include "calc/calc.h"
#include "model/net.h"
