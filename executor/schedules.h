// The schedule kinds; each is defined in its own file and listed in schedule.cc.
#pragma once

#include "executor/schedule.h"

namespace pp {

const ScheduleKind* GpipeSchedule();        // gpipe.cc
const ScheduleKind* OneFOneBSchedule();     // one_f_one_b.cc
const ScheduleKind* InterleavedSchedule();  // interleaved.cc
const ScheduleKind* ZbH1Schedule();         // zb_h1.cc
const ScheduleKind* ZbvSchedule();          // zbv.cc

}  // namespace pp
