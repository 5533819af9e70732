// The schedule kinds; each is defined in its own file and listed in schedule.cc.
#pragma once

#include "executor/schedule.h"

namespace pp {

const ScheduleKind* GpipeSchedule();     // gpipe.cc
const ScheduleKind* OneFOneBSchedule();  // one_f_one_b.cc

}  // namespace pp
