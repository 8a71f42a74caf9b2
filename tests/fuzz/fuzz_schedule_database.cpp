// libFuzzer target for the schedule database reader: any bytes must give a database or a
// std::runtime_error naming the file, never a crash, a hang or an uncaught JSON exception; a
// database that loads saves and reloads to the same entries.
// fuzz-sources: schedules/src/database.cpp
// fuzz-libraries: -Ischedules/include -lfmt
#include <convgen/schedules/database.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string path = "/dev/shm/convgen_fuzz_schedules_" + std::to_string(getpid()) + ".json";
    FILE* file = std::fopen(path.c_str(), "wb");
    if (file == nullptr) return 0;
    std::fwrite(data, 1, size, file);
    std::fclose(file);
    try {
        const convgen::schedules::ScheduleDatabase database = convgen::schedules::ScheduleDatabase::load(path);
        database.save(path);
        if (convgen::schedules::ScheduleDatabase::load(path).size() != database.size()) __builtin_trap();
    } catch (const std::runtime_error&) {
    }
    return 0;
}
