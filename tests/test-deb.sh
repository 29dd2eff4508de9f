#!/bin/sh
# Placeholder until contrib/debian lands: skip.
exit 77
