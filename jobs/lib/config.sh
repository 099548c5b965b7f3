# shellcheck shell=bash
# jobs/lib/config.sh: reads libconfig files from the shell, for the few keys
# the job scripts need (run.dir, pipeline.*, slurm.*, sweep.*). The
# executables remain the authority on the configuration (schema, types,
# ranges); this reader only has to find values in well-formed files.
# Layers, later wins, as in the executables: defaults file < site file <
# job file < --set overrides (ICS_CFG_SETS, one "key=value" per element).
# Sourced by jobs/lib/common.sh; needs bash and awk.

# ics_cfg_dump FILE: prints "key<TAB>value" for every setting in FILE, keys
# as dotted paths ("train.epochs"), strings without quotes, lists and arrays
# as their text ("[0.5, 0.9]"). Comments (#, //, /* */) are skipped.
# Returns 1 with a message naming the file when it cannot be read.
ics_cfg_dump() {
    local file=$1
    if [ ! -r "$file" ]; then
        echo "config: cannot read $file" >&2
        return 1
    fi
    awk '
    # Tokenizes the whole file: strings, words, and single punctuation.
    { text = text $0 "\n" }
    END {
        n = 0; i = 1; len = length(text)
        while (i <= len) {
            c = substr(text, i, 1)
            if (c ~ /[ \t\r\n]/) { i++; continue }
            if (c == "#" || substr(text, i, 2) == "//") {
                while (i <= len && substr(text, i, 1) != "\n") i++
                continue
            }
            if (substr(text, i, 2) == "/*") {
                j = index(substr(text, i + 2), "*/")
                i = (j == 0) ? len + 1 : i + 2 + j + 1
                continue
            }
            if (c == "\"") {
                s = ""; i++
                while (i <= len && substr(text, i, 1) != "\"") {
                    if (substr(text, i, 1) == "\\") { s = s substr(text, i, 2); i += 2 }
                    else { s = s substr(text, i, 1); i++ }
                }
                i++
                # Adjacent string literals concatenate, as in libconfig.
                if (n > 0 && kind[n] == "s") { tok[n] = tok[n] s; continue }
                tok[++n] = s; kind[n] = "s"; continue
            }
            if (c ~ /[=:;,{}()\[\]]/) { tok[++n] = c; kind[n] = "p"; i++; continue }
            w = ""
            while (i <= len && substr(text, i, 1) !~ /[ \t\r\n=:;,{}()\[\]"#]/) {
                w = w substr(text, i, 1); i++
            }
            tok[++n] = w; kind[n] = "w"
        }
        depth = 0; t = 1
        while (t <= n) {
            if (kind[t] == "p" && tok[t] == "}") { depth--; t++; continue }
            if (kind[t] == "p") { t++; continue }
            name = tok[t]
            if (t + 1 > n || (tok[t + 1] != "=" && tok[t + 1] != ":")) { t++; continue }
            t += 2
            path = name
            for (d = depth; d >= 1; d--) path = stack[d] "." path
            if (tok[t] == "{") { stack[++depth] = name; t++; continue }
            if (tok[t] == "[" || tok[t] == "(") {
                v = tok[t]; open = 1; t++
                while (t <= n && open > 0) {
                    if (kind[t] == "p" && (tok[t] == "[" || tok[t] == "(")) open++
                    if (kind[t] == "p" && (tok[t] == "]" || tok[t] == ")")) open--
                    if (kind[t] == "p" && tok[t] == ",") v = v ", "
                    else if (kind[t] == "s") v = v "\"" tok[t] "\""
                    else v = v tok[t]
                    t++
                }
                print path "\t" v
                continue
            }
            print path "\t" tok[t]
            t++
        }
    }' "$file"
}

# ics_cfg_file_get FILE KEY: the value of KEY in FILE; returns 1 when absent.
ics_cfg_file_get() {
    local dump
    dump=$(ics_cfg_dump "$1") || return 1
    awk -F '\t' -v key="$2" '$1 == key { v = $2; found = 1 } END { if (found) print v; exit !found }' <<<"$dump"
}

# ics_cfg_layers: the files read, bottom layer first: the shipped defaults
# (ICSPARSE_DEFAULTS_CONFIG, else conf/defaults.cfg of the source tree or of
# the installation, found from jobs/), the site file (ICSPARSE_SITE_CONFIG,
# else /etc/icsparse/site.cfg), then the job file ICS_CFG_FILE. Missing
# files are skipped: the executables report them.
ics_cfg_layers() {
    local jobs=${ICS_JOBS_DIR:-.} f
    local site=${ICSPARSE_SITE_CONFIG:-/etc/icsparse/site.cfg}
    for f in "${ICSPARSE_DEFAULTS_CONFIG:-}" "$jobs/../conf/defaults.cfg" \
             "$jobs/../../../share/icsparse/conf/defaults.cfg"; do
        if [ -n "$f" ] && [ -r "$f" ]; then echo "$f"; break; fi
    done
    if [ -r "$site" ]; then echo "$site"; fi
    if [ -n "${ICS_CFG_FILE:-}" ]; then echo "$ICS_CFG_FILE"; fi
}

# ics_cfg_get KEY DEFAULT: the effective value of KEY, or DEFAULT when no
# layer sets it. The --set overrides in the array ICS_CFG_SETS win.
ics_cfg_get() {
    local key=$1 value=$2 file v set
    while read -r file; do
        [ -n "$file" ] || continue
        if v=$(ics_cfg_file_get "$file" "$key"); then value=$v; fi
    done < <(ics_cfg_layers)
    for set in "${ICS_CFG_SETS[@]+"${ICS_CFG_SETS[@]}"}"; do
        if [ "${set%%=*}" = "$key" ]; then
            value=${set#*=}
            # --set text is libconfig syntax: a quoted string loses its quotes.
            if [[ $value == \"*\" ]]; then value=${value#\"}; value=${value%\"}; fi
        fi
    done
    printf '%s\n' "$value"
}
