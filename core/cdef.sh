#!/bin/sh
# core/cdef.sh HEADER - print the Lua module that holds the ffi.cdef text of
# HEADER: the lines between its "/* TIDE_FFI_BEGIN */" and
# "/* TIDE_FFI_END */" marker lines (core/tide.h). `make cdef` writes
# lua/tide/cdef.lua with it; tests/e2e/test_cdef.sh fails when they drift.
set -eu
echo "-- Generated from $1 by core/cdef.sh (make cdef): do not edit."
echo "-- The FFI-visible part of Tide's C ABI, for the LuaJIT host (tide.ffi)."
echo "return [==["
awk '/^\/\* TIDE_FFI_END \*\/$/ { f = 0 } f { print } /^\/\* TIDE_FFI_BEGIN \*\/$/ { f = 1 }' "$1"
echo "]==]"
