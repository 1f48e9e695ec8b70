// The umbrella header: everything a pynn program uses.
#pragma once

#include "pynn/compute_graph.hpp"
#include "pynn/dtype.hpp"
#include "pynn/error.hpp"
#include "pynn/flags.hpp"
#include "pynn/layers.hpp"
#include "pynn/losses.hpp"
#include "pynn/math.hpp"
#include "pynn/models.hpp"
#include "pynn/optimizers.hpp"
#include "pynn/tensor.hpp"
