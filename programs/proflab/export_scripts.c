/* The remote helpers of `proflab export` that need nothing from proflab in
 * the container: one for POSIX sh (dd, cksum, base64 or od; gzip and
 * sha256sum when present) and one for Node.js. Both speak the protocol of
 * src/export/frame.h and exit only when stdin ends.
 *
 * Neither script contains a single quote, so each survives being wrapped in
 * single quotes for a command string that ECS splits like a shell. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "strv.h"

const char *const cli_export_helper_names[CLI_EXPORT_HELPER_COUNT] = {"proflabd", "node", "sh"};

/* $1 = get|list, $2 = path. Offsets and lengths are requested in multiples of
 * 4096 (except the last chunk), so dd reads whole 4096-byte blocks. */
const char cli_export_sh_script[] =
    "read m || exit 0\n"
    "case $m in *[!0-9a-f]*|\"\") exit 0;; esac\n"
    "p=$2; x=\n"
    "if [ \"$1\" = list ]; then\n"
    "  if [ -d \"$p\" ]; then\n"
    "    t=${TMPDIR:-/tmp}/.proflab-list.$$\n"
    "    trap \"rm -f \\\"\\$t\\\"\" 0\n"
    "    for f in \"$p\"/*; do\n"
    "      [ -f \"$f\" ] || continue\n"
    "      set -- $(wc -c <\"$f\"); printf \"%s %s\\n\" \"$1\" \"${f##*/}\"\n"
    "    done >\"$t\"\n"
    "    p=$t\n"
    "  elif [ -e \"$p\" ]; then x=ENOTDIR; fi\n"
    "fi\n"
    "if [ -n \"$x\" ]; then :; elif [ ! -e \"$p\" ]; then x=ENOENT; elif [ -d \"$p\" ]; then "
    "x=EISDIR;"
    " elif [ ! -r \"$p\" ]; then x=EACCES; fi\n"
    "if [ -n \"$x\" ]; then printf \"{%s|x|%s}\\n\" \"$m\" \"$x\"; cat >/dev/null; exit 0; fi\n"
    "e=b; command -v base64 >/dev/null 2>&1 || e=x\n"
    "z=; [ $e = b ] && command -v gzip >/dev/null 2>&1 && z=g\n"
    "if command -v sha256sum >/dev/null 2>&1; then set -- $(sha256sum <\"$p\"); s=s:$1\n"
    "else set -- $(cksum <\"$p\"); s=k:$1; fi\n"
    "set -- $(wc -c <\"$p\"); n=$1\n"
    "h=\"$n|$s|-|$z${e}N\"; set -- $(printf %s \"$h\" | cksum); k=$1\n"
    "printf \"{%s|i|%s|k%s}\\n\" \"$m\" \"$h\" \"$k\"\n"
    "R=$(printf \"\\r\")\n"
    "while read c o l r; do\n"
    "  c=${c%\"$R\"}; l=${l%\"$R\"}\n"
    "  if [ \"$c\" = i ]; then printf \"{%s|i|%s|k%s}\\n\" \"$m\" \"$h\" \"$k\"; continue; fi\n"
    "  if [ \"$c\" = n ]; then\n"
    "    case $o$l in *[!0-9]*|\"\") continue;; esac\n"
    "    [ ${#l} -gt 7 ] && l=1048576; [ \"$l\" -gt 1048576 ] && l=1048576\n"
    "    printf \"{%s|n|%s|\" \"$m\" \"$o\"\n"
    "    [ \"$l\" -gt 0 ] && dd if=/dev/zero bs=$l count=1 2>/dev/null | tr \"\\0\" .\n"
    "    printf \"}\\n\"; continue\n"
    "  fi\n"
    "  [ \"$c\" = g ] || continue\n"
    "  case $o$l in *[!0-9]*|\"\") continue;; esac\n"
    "  b=$((o / 4096)); k2=$(((l + 4095) / 4096))\n"
    "  set -- $(dd if=\"$p\" bs=4096 skip=$b count=$k2 2>/dev/null | cksum)\n"
    "  u=$e; [ \"$r\" = g ] && [ -n \"$z\" ] && u=g\n"
    "  printf \"{%s|d|%s|%s|k%s|%s|\" \"$m\" \"$o\" \"$2\" \"$1\" \"$u\"\n"
    "  case $u in\n"
    "    g) dd if=\"$p\" bs=4096 skip=$b count=$k2 2>/dev/null | gzip -c | base64;;\n"
    "    b) dd if=\"$p\" bs=4096 skip=$b count=$k2 2>/dev/null | base64;;\n"
    "    *) dd if=\"$p\" bs=4096 skip=$b count=$k2 2>/dev/null | od -An -v -tx1 | tr -d \" "
    "\\n\";;\n"
    "  esac\n"
    "  printf \"}\\n\"\n"
    "done\n";

/* process.argv[1] = get|list, [2] = path (node -e SCRIPT get PATH). */
const char cli_export_node_script[] =
    "const fs=require(\"fs\"),zl=require(\"zlib\"),cr=require(\"crypto\");"
    "const op=process.argv[1],p=process.argv[2];"
    "let m=null,buf=\"\",fd=-1,mem=null,dead=false;"
    "const T=new Int32Array(256);"
    "for(let i=0;i<256;i++){let c=i;for(let k=0;k<8;k++)c=c&1?0xEDB88320^(c>>>1):c>>>1;T[i]=c}"
    "const crc=b=>{let c=-1;for(let i=0;i<b.length;i++)c=T[(c^b[i])&255]^(c>>>8);"
    "return((c^-1)>>>0).toString(16).padStart(8,\"0\")};"
    "const out=s=>process.stdout.write(s);"
    "let I=\"\";const info=t=>{I=`{${m}|i|${t}|c${crc(Buffer.from(t))}}\\n`;out(I)};"
    "function start(){try{"
    "if(op===\"list\"){const l=[];for(const n of fs.readdirSync(p)){try{"
    "const s=fs.statSync(p+\"/\"+n);if(s.isFile()&&!n.includes(\"\\n\"))l.push(s.size+\" "
    "\"+n+\"\\n\")}"
    "catch(e){}}mem=Buffer.from(l.join(\"\"));"
    "info(`${mem.length}|s:${cr.createHash(\"sha256\").update(mem).digest(\"hex\")}|-|gbN`)}"
    "else{fd=fs.openSync(p,\"r\");const s=fs.fstatSync(fd);"
    "if(s.isDirectory())throw{code:\"EISDIR\"};"
    "const h=cr.createHash(\"sha256\"),b=Buffer.alloc(1<<20);let o=0,n;"
    "while((n=fs.readSync(fd,b,0,b.length,o))>0){h.update(b.subarray(0,n));o+=n}"
    "info(`${s.size}|s:${h.digest(\"hex\")}|${s.ino}.${s.mtimeMs}|gbN`)}"
    "}catch(e){const "
    "c=[\"ENOENT\",\"EACCES\",\"EISDIR\",\"ENOTDIR\"].includes(e.code)?e.code:\"EIO\";"
    "out(`{${m}|x|${c}}\\n`);dead=true}}"
    "function req(line){const a=line.trim().split(/\\s+/);if(dead)return;"
    "if(a[0]===\"i\"){if(I)out(I);return}"
    "if(a[0]===\"n\"&&a.length>=3){const q=Number(a[1]),z=Math.min(Number(a[2]),1048576);"
    "if(Number.isSafeInteger(q)&&Number.isSafeInteger(z)&&q>=0&&z>=0)out(`{${m}|n|${q}|${\".\"."
    "repeat(z)}}\\n`);"
    "return}"
    "if(a[0]!==\"g\"||a.length<4)return;"
    "const o=Number(a[1]),l=Math.min(Number(a[2]),4194304);"
    "if(!Number.isSafeInteger(o)||!Number.isSafeInteger(l)||o<0||l<0)return;"
    "let d;if(mem)d=mem.subarray(o,o+l);"
    "else{d=Buffer.alloc(l);d=d.subarray(0,fs.readSync(fd,d,0,l,o))}"
    "let e=\"b\",pl=d;if(a[3]===\"g\"&&d.length){const "
    "z=zl.gzipSync(d);if(z.length<d.length){pl=z;e=\"g\"}}"
    "out(`{${m}|d|${o}|${d.length}|c${crc(d)}|${e}|${pl.toString(\"base64\")}}\\n`)}"
    "process.stdin.setEncoding(\"latin1\");"
    "process.stdin.on(\"data\",c=>{buf+=c;let i;while((i=buf.indexOf(\"\\n\"))>=0){"
    "const line=buf.slice(0,i).replace(/\\r/g,\"\");buf=buf.slice(i+1);"
    "if(m===null){if(/^[0-9a-f]{32}$/.test(line)){m=line;start()}}else req(line)}});"
    "process.stdin.on(\"end\",()=>process.exit(0));";

int cli_export_remote_argv(int h, const char *op, const char *path, cli_strv *out) {
  int r = 0;
  switch (h) {
    case CLI_EXPORT_HELPER_PROFLABD:
      r |= cli_strv_push(out, "proflabd");
      r |= cli_strv_push(out, "export-helper");
      break;
    case CLI_EXPORT_HELPER_NODE:
      r |= cli_strv_push(out, "node");
      r |= cli_strv_push(out, "-e");
      r |= cli_strv_push(out, cli_export_node_script);
      break;
    default:
      r |= cli_strv_push(out, "sh");
      r |= cli_strv_push(out, "-c");
      r |= cli_strv_push(out, cli_export_sh_script);
      r |= cli_strv_push(out, "sh");
      break;
  }
  r |= cli_strv_push(out, op);
  r |= cli_strv_push(out, path);
  return r ? -1 : 0;
}

static int is_bare(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=@%+,-", *s))
      return 0;
  return 1;
}

char *cli_export_shell_join(const cli_strv *argv) {
  size_t cap = 1;
  for (size_t i = 0; i < argv->n; i++) cap += 4 * strlen(argv->v[i]) + 3;
  char *s = malloc(cap);
  if (!s) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < argv->n; i++) {
    const char *a = argv->v[i];
    if (i) s[o++] = ' ';
    if (is_bare(a)) {
      size_t n = strlen(a);
      memcpy(s + o, a, n);
      o += n;
      continue;
    }
    s[o++] = '\'';
    for (; *a; a++) {
      if (*a == '\'') {
        memcpy(s + o, "'\\''", 4);
        o += 4;
      } else {
        s[o++] = *a;
      }
    }
    s[o++] = '\'';
  }
  s[o] = '\0';
  return s;
}
