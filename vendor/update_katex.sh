#!/usr/bin/env bash
# Make vendor/html/_static/katex/ again from the npm package katex: the
# KaTeX that typesets the book's maths in the reader's browser, offline
# (vendor/README.md says why KaTeX, and what is kept of the package).
#
#   bash vendor/update_katex.sh            # the version in vendor/html/_static/katex/VERSION
#   bash vendor/update_katex.sh 0.19.2     # another version
#
# Needs npm (only here: building the book needs no Node.js). Then build the
# book and run tests/test_browser.py, which fails on maths KaTeX cannot
# typeset.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/html/_static/katex"
version=${1:-$(cat "$out/VERSION")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "katex@$version" > /dev/null && tar xzf "katex-$version.tgz")
rm -rf "$out"
mkdir -p "$out/fonts"
cp "$work/package/dist/katex.min.js" "$work/package/LICENSE" "$out/"
cp "$work/package/dist/fonts/"*.woff2 "$out/fonts/"
# Every browser the book supports reads woff2: drop the stylesheet's woff and
# ttf fallbacks, whose files are not shipped.
sed -E 's/,url\(fonts\/[^)]*\.(woff|ttf)\) format\("(woff|truetype)"\)//g' \
  "$work/package/dist/katex.min.css" > "$out/katex.min.css"
echo "$version" > "$out/VERSION"
echo "vendor/html/_static/katex: KaTeX $version, $(du -sh "$out" | cut -f1)"
