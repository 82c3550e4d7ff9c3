#!/usr/bin/env bash
# Sourced by the repository's commands: make sure .venv exists (installing Debian's
# python3-venv first when root and it is missing). Installing the project is the caller's.
#
#   source scripts/venv.sh      # from the repository root; defines ensure_venv
ensure_venv() {
    if [ -x .venv/bin/python ] && [ -x .venv/bin/pip ]; then
        return 0
    fi
    printf 'creating .venv\n' >&2
    rm -rf .venv
    if python3 -m venv .venv 2>/dev/null; then
        return 0
    fi
    rm -rf .venv
    if [ "$EUID" -eq 0 ] && command -v apt-get >/dev/null; then
        printf 'installing python3-venv with apt-get\n' >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
            -o DPkg::Lock::Timeout=300 python3 python3-venv >/dev/null
        python3 -m venv .venv
    else
        printf "error: 'python3 -m venv' failed; install python3 and python3-venv\n" >&2
        return 1
    fi
}
