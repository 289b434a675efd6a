// weir's version. Keep in sync with project(weir VERSION ...) in CMakeLists.txt.
#pragma once

#define WEIR_VERSION "0.1.0"
