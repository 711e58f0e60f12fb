#pragma once
// What CMake would generate from kdmp-parser-version.h.in; the oracle build needs no CMake.
#define KDMPPARSER_PROJECT_NAME "kdmp-parser"
#define KDMPPARSER_PROJECT_AUTHOR "0vercl0k"
#define KDMPPARSER_PROJECT_LICENSE "MIT"
#define KDMPPARSER_VERSION_MAJOR 0
#define KDMPPARSER_VERSION_MINOR 0
#define KDMPPARSER_VERSION_PATCH 0
#define KDMPPARSER_VERSION_RELEASE "0.0.0"
