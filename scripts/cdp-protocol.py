#!/usr/bin/env python3
# Writes src/inspector/protocol.c: the protocol description /json/protocol
# serves (the domains, commands and events src/inspector/cdp_*.c implement).
# Run it after changing a command: python3 scripts/cdp-protocol.py
import json
def cmd(name, desc, params=None, returns=None):
    d={"name":name,"description":desc}
    if params: d["parameters"]=params
    if returns: d["returns"]=returns
    return d
def p(name, typ, desc, optional=False, ref=None):
    d={"name":name,"description":desc}
    if ref: d["$ref"]=ref
    else: d["type"]=typ
    if optional: d["optional"]=True
    return d
proto={"version":{"major":"1","minor":"3"},"domains":[
 {"domain":"Runtime","description":"The execution context DevTools waits for, and heap usage from proflab's heap tracker.",
  "types":[{"id":"ExecutionContextId","type":"integer"},
           {"id":"ExecutionContextDescription","type":"object","properties":[
              p("id","integer","Context id.",ref="ExecutionContextId"),p("origin","string","Empty."),
              p("name","string","program[pid]"),p("uniqueId","string","Unique id."),
              p("auxData","object","{isDefault: true}",optional=True)]}],
  "commands":[cmd("enable","Reports the default execution context (an executionContextCreated event)."),
              cmd("disable","Does nothing."),
              cmd("runIfWaitingForDebugger","Does nothing: a C process never waits for a debugger."),
              cmd("getIsolateId","The process's id for this inspector run.",returns=[p("id","string","pid.target-id")]),
              cmd("getHeapUsage","usedSize: live heap bytes estimated by the heap tracker (glibc's in-use bytes without it); totalSize: resident memory.",
                  returns=[p("usedSize","number","Live heap bytes."),p("totalSize","number","Resident bytes.")])],
  "events":[{"name":"executionContextCreated","parameters":[p("context","object","The context.",ref="ExecutionContextDescription")]}]},
 {"domain":"Profiler","description":"Wall-clock CPU profiles of the service's event-loop thread, written as .cpuprofile.",
  "types":[{"id":"Profile","type":"object","description":"A .cpuprofile: nodes, startTime, endTime, samples, timeDeltas.","properties":[]}],
  "commands":[cmd("enable","Does nothing."),cmd("disable","Drops a running profile."),
              cmd("setSamplingInterval","Sampling interval in microseconds for the next start; the sampler's highest rate is 10 kHz (100 us).",params=[p("interval","integer","Microseconds.")]),
              cmd("start","Starts a profile; fails when another capture holds the profiler (the lab, another session)."),
              cmd("stop","Stops and returns the profile.",returns=[p("profile","object","The profile.",ref="Profile")])],
  "events":[]},
 {"domain":"HeapProfiler","description":"Heap snapshots and sampling heap profiles from proflab's heap tracker.",
  "types":[{"id":"SamplingHeapProfile","type":"object","description":"head (nested nodes) and samples.","properties":[]},
           {"id":"HeapSnapshotObjectId","type":"string"}],
  "commands":[cmd("enable","Does nothing."),cmd("disable","Ends sampling."),
              cmd("collectGarbage","Succeeds: a C heap has nothing to collect."),
              cmd("takeHeapSnapshot","Streams a .heapsnapshot as addHeapSnapshotChunk events, then answers.",
                  params=[p("reportProgress","boolean","Send reportHeapSnapshotProgress events.",optional=True),
                          p("treatGlobalObjectsAsRoots","boolean","Ignored.",optional=True),
                          p("captureNumericValue","boolean","Ignored.",optional=True),
                          p("exposeInternals","boolean","Ignored.",optional=True)]),
              cmd("startSampling","Starts a sampling heap profile (the tracker's interval is the process's; samplingInterval is not applied).",
                  params=[p("samplingInterval","number","Bytes; not applied.",optional=True)]),
              cmd("stopSampling","The live allocations made since startSampling.",returns=[p("profile","object","The profile.",ref="SamplingHeapProfile")]),
              cmd("getHeapObjectId","Not supported: a C process has no JavaScript objects.",params=[p("objectId","string","Ignored.")]),
              cmd("getObjectByHeapObjectId","Not supported: a C process has no JavaScript objects.",params=[p("objectId","string","Ignored.",ref="HeapSnapshotObjectId")])],
  "events":[{"name":"addHeapSnapshotChunk","parameters":[p("chunk","string","Part of the snapshot's JSON.")]},
            {"name":"reportHeapSnapshotProgress","parameters":[p("done","integer","Done."),p("total","integer","Total."),p("finished","boolean","Finished.",optional=True)]}]}]}
txt=json.dumps(proto,separators=(',',':'))
# C string literal, split in lines
out=['/* The protocol description served at /json/protocol (see protocol.h).',
     ' * Written by scripts/cdp-protocol.py: change the description there. */',
     '#include "inspector/protocol.h"','','static const char protocol_json[] =']
line=''
esc=txt.replace('\\','\\\\').replace('"','\\"')
chunks=[esc[i:i+90] for i in range(0,len(esc),90)]
# avoid splitting escape sequences
fixed=[];carry=''
for ch in chunks:
    ch=carry+ch; carry=''
    while ch.endswith('\\') and not ch.endswith('\\\\'):
        carry=ch[-1]+carry; ch=ch[:-1]
    fixed.append(ch)
if carry: fixed.append(carry)
for c in fixed: out.append('    "'+c+'"')
out[-1]+=';'
out+=['','const char *pl__cdp_protocol_json(size_t *len) {','  *len = sizeof(protocol_json) - 1;','  return protocol_json;','}','']
import os; open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src', 'inspector', 'protocol.c'), 'w').write('\n'.join(out))
