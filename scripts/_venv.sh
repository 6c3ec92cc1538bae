# Sourced by bench.sh and test.sh: virtual environments for the PyPI-only peers (tslearn,
# FAISS, torch), made from Debian's /usr/bin/python3 without the system site-packages and
# reused.  Nothing is ever pip-installed into the system Python, where pip could replace
# Debian's numpy with 2.x under Debian's scikit-learn.

kmeans_venv_base=/usr/bin/python3
[ -x "$kmeans_venv_base" ] || kmeans_venv_base=$(command -v python3)

# kmeans_venv_install VENV REQUIREMENTS: installs the file into the environment unless its
# stamp says that exact file is installed there already.
kmeans_venv_install() {
    local venv=$1 req=$2 stamp sum
    stamp="$venv/.kmeans-$(basename "$req" .txt).sha1"
    sum=$(sha1sum <"$req" | cut -d' ' -f1)
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && return 0
    echo "== installing $req into $venv (pip, from PyPI)" >&2
    rm -f "$stamp"
    # wheels only: nothing is compiled; short timeouts, so that a machine without PyPI gives up soon
    if "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
            --only-binary=:all: --timeout 30 --retries 1 -r "$req" >"$venv/pip.log" 2>&1; then
        echo "$sum" >"$stamp"
    else
        tail -5 "$venv/pip.log" | sed 's/^/    /' >&2
        echo "pip could not install $req (the whole log: $venv/pip.log)" >&2
        return 1
    fi
}

# kmeans_venv_make VENV: makes the environment, or reuses it where it runs.
kmeans_venv_make() {
    local venv=$1
    if [ -e "$venv" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        # e.g. made by a Python that has since been replaced
        echo "== $venv does not run; making it again" >&2
        rm -rf "$venv"
    fi
    if [ ! -e "$venv/bin/python" ]; then
        echo "== making the virtual environment $venv from $kmeans_venv_base" >&2
        mkdir -p "$(dirname "$venv")"
        "$kmeans_venv_base" -m venv "$venv" || { rm -rf "$venv"; return 1; }
    fi
}
