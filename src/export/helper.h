/* The remote side of `proflab export` built into proflabd:
 *   proflabd export-helper get FILE    serve FILE
 *   proflabd export-helper list DIR    serve a listing of DIR ("SIZE NAME" lines)
 * Protocol in export/frame.h. Reads the marker and requests on stdin, writes
 * frames on stdout, and returns (exit status) only when stdin ends. */
#ifndef PROFLAB_EXPORT_HELPER_H
#define PROFLAB_EXPORT_HELPER_H

/* argv[0] is "export-helper". Returns the process exit status. */
int pl__export_helper_main(int argc, char **argv);

#endif
