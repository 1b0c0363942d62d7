"""Tensor printing: every expected string below is what PyTorch 2.x prints for the same data
(``torch.`` dtype names spelled ``dtorch.``), so ``repr`` stays identical to PyTorch's."""

import math

import numpy as np
import pytest

import dtorch
from dtorch import _printing
from dtorch._printing import get_printoptions, parameter_repr, printoptions, set_printoptions


@pytest.fixture(autouse=True)
def _restore_defaults():
    yield
    set_printoptions(profile="default")
    dtorch.set_default_dtype(dtorch.float32)


# (id, set_printoptions arguments or None, tensor builder, PyTorch's repr)
CASES = [
    ('float_int_valued', None,
     lambda: dtorch.tensor([1., 2., 3.]),
     'tensor([1., 2., 3.])'),
    ('float_fixed', None,
     lambda: dtorch.tensor([1.5, -2.25, 3.0]),
     'tensor([ 1.5000, -2.2500,  3.0000])'),
    ('float_padding', None,
     lambda: dtorch.tensor([0.5, -10.5, 100.25]),
     'tensor([  0.5000, -10.5000, 100.2500])'),
    ('float_rounding', None,
     lambda: dtorch.tensor([1.23456789, 2.0]),
     'tensor([1.2346, 2.0000])'),
    ('float_neg_zero', None,
     lambda: dtorch.tensor([-0., 1.]),
     'tensor([-0., 1.])'),
    ('float_all_zero', None,
     lambda: dtorch.zeros(3),
     'tensor([0., 0., 0.])'),
    ('sci_large', None,
     lambda: dtorch.tensor([1e5, 1.]),
     'tensor([1.0000e+05, 1.0000e+00])'),
    ('sci_ratio_boundary_1000', None,
     lambda: dtorch.tensor([1500., 1.5]),
     'tensor([1500.0000,    1.5000])'),
    ('sci_ratio_above_1000', None,
     lambda: dtorch.tensor([1501., 1.5]),
     'tensor([1.5010e+03, 1.5000e+00])'),
    ('sci_small', None,
     lambda: dtorch.tensor([1e-5, 1.]),
     'tensor([1.0000e-05, 1.0000e+00])'),
    ('sci_small_alone', None,
     lambda: dtorch.tensor([3e-5]),
     'tensor([3.0000e-05])'),
    ('sci_huge', None,
     lambda: dtorch.tensor([1.2e9, 2e9]),
     'tensor([1.2000e+09, 2.0000e+09])'),
    ('min_1e-4_not_sci', None,
     lambda: dtorch.tensor([1e-4, 0.05]),
     'tensor([1.0000e-04, 5.0000e-02])'),
    ('nonfinite_only', None,
     lambda: dtorch.tensor([float('nan'), float('inf'), float('-inf')]),
     'tensor([nan, inf, -inf])'),
    ('nonfinite_int_mode', None,
     lambda: dtorch.tensor([float('nan'), 2., float('-inf')]),
     'tensor([nan, 2., -inf])'),
    ('nonfinite_fixed', None,
     lambda: dtorch.tensor([float('nan'), 1.5, float('inf')]),
     'tensor([   nan, 1.5000,    inf])'),
    ('nonfinite_sci', None,
     lambda: dtorch.tensor([float('nan'), 1e-7, float('inf')]),
     'tensor([       nan, 1.0000e-07,        inf])'),
    ('int64', None,
     lambda: dtorch.tensor([1, -20, 300]),
     'tensor([  1, -20, 300])'),
    ('int32', None,
     lambda: dtorch.tensor([1, 2, 3], dtype=dtorch.int32),
     'tensor([1, 2, 3], dtype=dtorch.int32)'),
    ('int16', None,
     lambda: dtorch.tensor([7, -8], dtype=dtorch.int16),
     'tensor([ 7, -8], dtype=dtorch.int16)'),
    ('int8', None,
     lambda: dtorch.tensor([7, -8], dtype=dtorch.int8),
     'tensor([ 7, -8], dtype=dtorch.int8)'),
    ('uint8', None,
     lambda: dtorch.tensor([0, 255], dtype=dtorch.uint8),
     'tensor([  0, 255], dtype=dtorch.uint8)'),
    ('bool', None,
     lambda: dtorch.tensor([True, False, True]),
     'tensor([ True, False,  True])'),
    ('bool_2d', None,
     lambda: dtorch.tensor([[True], [False]]),
     ('tensor([[ True],\n'
      '        [False]])')),
    ('float64', None,
     lambda: dtorch.tensor([0.1, 0.2], dtype=dtorch.float64),
     'tensor([0.1000, 0.2000], dtype=dtorch.float64)'),
    ('float64_int_valued', None,
     lambda: dtorch.tensor([1., 2.], dtype=dtorch.float64),
     'tensor([1., 2.], dtype=dtorch.float64)'),
    ('float16', None,
     lambda: dtorch.tensor([1.5, 65504.], dtype=dtorch.float16),
     'tensor([1.5000e+00, 6.5504e+04], dtype=dtorch.float16)'),
    ('scalar_float', None,
     lambda: dtorch.tensor(3.),
     'tensor(3.)'),
    ('scalar_float_frac', None,
     lambda: dtorch.tensor(-1.25),
     'tensor(-1.2500)'),
    ('scalar_sci', None,
     lambda: dtorch.tensor(1e-6),
     'tensor(1.0000e-06)'),
    ('scalar_nan', None,
     lambda: dtorch.tensor(float('nan')),
     'tensor(nan)'),
    ('scalar_int', None,
     lambda: dtorch.tensor(7),
     'tensor(7)'),
    ('scalar_bool', None,
     lambda: dtorch.tensor(True),
     'tensor(True)'),
    ('scalar_int32', None,
     lambda: dtorch.tensor(5, dtype=dtorch.int32),
     'tensor(5, dtype=dtorch.int32)'),
    ('scalar_float64', None,
     lambda: dtorch.tensor(2.5, dtype=dtorch.float64),
     'tensor(2.5000, dtype=dtorch.float64)'),
    ('empty', None,
     lambda: dtorch.tensor([]),
     'tensor([])'),
    ('empty_2d', None,
     lambda: dtorch.zeros(0, 3),
     'tensor([], size=(0, 3))'),
    ('empty_3d_int', None,
     lambda: dtorch.zeros(2, 0, 3, dtype=dtorch.int64),
     'tensor([], size=(2, 0, 3), dtype=dtorch.int64)'),
    ('empty_int64', None,
     lambda: dtorch.tensor([], dtype=dtorch.int64),
     'tensor([], dtype=dtorch.int64)'),
    ('empty_bool', None,
     lambda: dtorch.tensor([], dtype=dtorch.bool),
     'tensor([], dtype=dtorch.bool)'),
    ('empty_float64', None,
     lambda: dtorch.zeros(0, dtype=dtorch.float64),
     'tensor([], dtype=dtorch.float64)'),
    ('matrix', None,
     lambda: dtorch.arange(12.).reshape(3, 4),
     ('tensor([[ 0.,  1.,  2.,  3.],\n'
      '        [ 4.,  5.,  6.,  7.],\n'
      '        [ 8.,  9., 10., 11.]])')),
    ('matrix_fixed', None,
     lambda: dtorch.arange(6.).reshape(2, 3) / 4 - 0.5,
     ('tensor([[-0.5000, -0.2500,  0.0000],\n'
      '        [ 0.2500,  0.5000,  0.7500]])')),
    ('matrix_int', None,
     lambda: dtorch.arange(-3, 3).reshape(2, 3),
     ('tensor([[-3, -2, -1],\n'
      '        [ 0,  1,  2]])')),
    ('tensor_3d', None,
     lambda: dtorch.arange(24).reshape(2, 3, 4),
     ('tensor([[[ 0,  1,  2,  3],\n'
      '         [ 4,  5,  6,  7],\n'
      '         [ 8,  9, 10, 11]],\n'
      '\n'
      '        [[12, 13, 14, 15],\n'
      '         [16, 17, 18, 19],\n'
      '         [20, 21, 22, 23]]])')),
    ('tensor_4d', None,
     lambda: dtorch.arange(16.).reshape(2, 2, 2, 2),
     ('tensor([[[[ 0.,  1.],\n'
      '          [ 2.,  3.]],\n'
      '\n'
      '         [[ 4.,  5.],\n'
      '          [ 6.,  7.]]],\n'
      '\n'
      '\n'
      '        [[[ 8.,  9.],\n'
      '          [10., 11.]],\n'
      '\n'
      '         [[12., 13.],\n'
      '          [14., 15.]]]])')),
    ('tensor_3d_sci', None,
     lambda: dtorch.arange(8.).reshape(2, 2, 2) * 1e6,
     ('tensor([[[      0., 1000000.],\n'
      '         [2000000., 3000000.]],\n'
      '\n'
      '        [[4000000., 5000000.],\n'
      '         [6000000., 7000000.]]])')),
    ('wrap_1d_float', None,
     lambda: dtorch.arange(30.) / 4,
     ('tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000, 1.2500, 1.5000, 1.7500, 2.0000,\n'
      '        2.2500, 2.5000, 2.7500, 3.0000, 3.2500, 3.5000, 3.7500, 4.0000, 4.2500,\n'
      '        4.5000, 4.7500, 5.0000, 5.2500, 5.5000, 5.7500, 6.0000, 6.2500, 6.5000,\n'
      '        6.7500, 7.0000, 7.2500])')),
    ('wrap_1d_int', None,
     lambda: dtorch.arange(40),
     ('tensor([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15, 16, 17,\n'
      '        18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,\n'
      '        36, 37, 38, 39])')),
    ('wrap_rows_2d', None,
     lambda: dtorch.arange(40.).reshape(2, 20) / 8,
     ('tensor([[0.0000, 0.1250, 0.2500, 0.3750, 0.5000, 0.6250, 0.7500, 0.8750, 1.0000,'
      '\n'
      '         1.1250, 1.2500, 1.3750, 1.5000, 1.6250, 1.7500, 1.8750, 2.0000, 2.1250,'
      '\n'
      '         2.2500, 2.3750],\n'
      '        [2.5000, 2.6250, 2.7500, 2.8750, 3.0000, 3.1250, 3.2500, 3.3750, 3.5000,'
      '\n'
      '         3.6250, 3.7500, 3.8750, 4.0000, 4.1250, 4.2500, 4.3750, 4.5000, 4.6250,'
      '\n'
      '         4.7500, 4.8750]])')),
    ('summ_1d_int', None,
     lambda: dtorch.arange(2000),
     'tensor([   0,    1,    2,  ..., 1997, 1998, 1999])'),
    ('summ_1d_float', None,
     lambda: dtorch.arange(2000.) / 2,
     ('tensor([0.0000e+00, 5.0000e-01, 1.0000e+00,  ..., 9.9850e+02, 9.9900e+02,\n'
      '        9.9950e+02])')),
    ('summ_2d', None,
     lambda: dtorch.arange(2000.).reshape(40, 50),
     ('tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 4.7000e+01, 4.8000e+01,\n'
      '         4.9000e+01],\n'
      '        [5.0000e+01, 5.1000e+01, 5.2000e+01,  ..., 9.7000e+01, 9.8000e+01,\n'
      '         9.9000e+01],\n'
      '        [1.0000e+02, 1.0100e+02, 1.0200e+02,  ..., 1.4700e+02, 1.4800e+02,\n'
      '         1.4900e+02],\n'
      '        ...,\n'
      '        [1.8500e+03, 1.8510e+03, 1.8520e+03,  ..., 1.8970e+03, 1.8980e+03,\n'
      '         1.8990e+03],\n'
      '        [1.9000e+03, 1.9010e+03, 1.9020e+03,  ..., 1.9470e+03, 1.9480e+03,\n'
      '         1.9490e+03],\n'
      '        [1.9500e+03, 1.9510e+03, 1.9520e+03,  ..., 1.9970e+03, 1.9980e+03,\n'
      '         1.9990e+03]])')),
    ('summ_formatter_sees_edges_only', None,
     lambda: dtorch.cat([dtorch.tensor([1.5, 2., 3.]), dtorch.full((1000,), 1e6),
                         dtorch.tensor([4., 5., 6.5])]),
     'tensor([1.5000, 2.0000, 3.0000,  ..., 4.0000, 5.0000, 6.5000])'),
    ('summ_3d', None,
     lambda: dtorch.arange(3000).reshape(10, 10, 30),
     ('tensor([[[   0,    1,    2,  ...,   27,   28,   29],\n'
      '         [  30,   31,   32,  ...,   57,   58,   59],\n'
      '         [  60,   61,   62,  ...,   87,   88,   89],\n'
      '         ...,\n'
      '         [ 210,  211,  212,  ...,  237,  238,  239],\n'
      '         [ 240,  241,  242,  ...,  267,  268,  269],\n'
      '         [ 270,  271,  272,  ...,  297,  298,  299]],\n'
      '\n'
      '        [[ 300,  301,  302,  ...,  327,  328,  329],\n'
      '         [ 330,  331,  332,  ...,  357,  358,  359],\n'
      '         [ 360,  361,  362,  ...,  387,  388,  389],\n'
      '         ...,\n'
      '         [ 510,  511,  512,  ...,  537,  538,  539],\n'
      '         [ 540,  541,  542,  ...,  567,  568,  569],\n'
      '         [ 570,  571,  572,  ...,  597,  598,  599]],\n'
      '\n'
      '        [[ 600,  601,  602,  ...,  627,  628,  629],\n'
      '         [ 630,  631,  632,  ...,  657,  658,  659],\n'
      '         [ 660,  661,  662,  ...,  687,  688,  689],\n'
      '         ...,\n'
      '         [ 810,  811,  812,  ...,  837,  838,  839],\n'
      '         [ 840,  841,  842,  ...,  867,  868,  869],\n'
      '         [ 870,  871,  872,  ...,  897,  898,  899]],\n'
      '\n'
      '        ...,\n'
      '\n'
      '        [[2100, 2101, 2102,  ..., 2127, 2128, 2129],\n'
      '         [2130, 2131, 2132,  ..., 2157, 2158, 2159],\n'
      '         [2160, 2161, 2162,  ..., 2187, 2188, 2189],\n'
      '         ...,\n'
      '         [2310, 2311, 2312,  ..., 2337, 2338, 2339],\n'
      '         [2340, 2341, 2342,  ..., 2367, 2368, 2369],\n'
      '         [2370, 2371, 2372,  ..., 2397, 2398, 2399]],\n'
      '\n'
      '        [[2400, 2401, 2402,  ..., 2427, 2428, 2429],\n'
      '         [2430, 2431, 2432,  ..., 2457, 2458, 2459],\n'
      '         [2460, 2461, 2462,  ..., 2487, 2488, 2489],\n'
      '         ...,\n'
      '         [2610, 2611, 2612,  ..., 2637, 2638, 2639],\n'
      '         [2640, 2641, 2642,  ..., 2667, 2668, 2669],\n'
      '         [2670, 2671, 2672,  ..., 2697, 2698, 2699]],\n'
      '\n'
      '        [[2700, 2701, 2702,  ..., 2727, 2728, 2729],\n'
      '         [2730, 2731, 2732,  ..., 2757, 2758, 2759],\n'
      '         [2760, 2761, 2762,  ..., 2787, 2788, 2789],\n'
      '         ...,\n'
      '         [2910, 2911, 2912,  ..., 2937, 2938, 2939],\n'
      '         [2940, 2941, 2942,  ..., 2967, 2968, 2969],\n'
      '         [2970, 2971, 2972,  ..., 2997, 2998, 2999]]])')),
    ('summ_short_dim', None,
     lambda: dtorch.arange(1010).reshape(2, 505),
     ('tensor([[   0,    1,    2,  ...,  502,  503,  504],\n'
      '        [ 505,  506,  507,  ..., 1007, 1008, 1009]])')),
    ('summ_bool', None,
     lambda: dtorch.arange(2000) % 3 == 0,
     'tensor([ True, False, False,  ..., False,  True, False])'),
    ('threshold_exact_1000', None,
     lambda: dtorch.arange(1000).reshape(10, 100),
     ('tensor([[  0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,\n'
      '          14,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  26,  27,\n'
      '          28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,  41,\n'
      '          42,  43,  44,  45,  46,  47,  48,  49,  50,  51,  52,  53,  54,  55,\n'
      '          56,  57,  58,  59,  60,  61,  62,  63,  64,  65,  66,  67,  68,  69,\n'
      '          70,  71,  72,  73,  74,  75,  76,  77,  78,  79,  80,  81,  82,  83,\n'
      '          84,  85,  86,  87,  88,  89,  90,  91,  92,  93,  94,  95,  96,  97,\n'
      '          98,  99],\n'
      '        [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113,\n'
      '         114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,\n'
      '         128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141,\n'
      '         142, 143, 144, 145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155,\n'
      '         156, 157, 158, 159, 160, 161, 162, 163, 164, 165, 166, 167, 168, 169,\n'
      '         170, 171, 172, 173, 174, 175, 176, 177, 178, 179, 180, 181, 182, 183,\n'
      '         184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197,\n'
      '         198, 199],\n'
      '        [200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213,\n'
      '         214, 215, 216, 217, 218, 219, 220, 221, 222, 223, 224, 225, 226, 227,\n'
      '         228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241,\n'
      '         242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255,\n'
      '         256, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269,\n'
      '         270, 271, 272, 273, 274, 275, 276, 277, 278, 279, 280, 281, 282, 283,\n'
      '         284, 285, 286, 287, 288, 289, 290, 291, 292, 293, 294, 295, 296, 297,\n'
      '         298, 299],\n'
      '        [300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312, 313,\n'
      '         314, 315, 316, 317, 318, 319, 320, 321, 322, 323, 324, 325, 326, 327,\n'
      '         328, 329, 330, 331, 332, 333, 334, 335, 336, 337, 338, 339, 340, 341,\n'
      '         342, 343, 344, 345, 346, 347, 348, 349, 350, 351, 352, 353, 354, 355,\n'
      '         356, 357, 358, 359, 360, 361, 362, 363, 364, 365, 366, 367, 368, 369,\n'
      '         370, 371, 372, 373, 374, 375, 376, 377, 378, 379, 380, 381, 382, 383,\n'
      '         384, 385, 386, 387, 388, 389, 390, 391, 392, 393, 394, 395, 396, 397,\n'
      '         398, 399],\n'
      '        [400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413,\n'
      '         414, 415, 416, 417, 418, 419, 420, 421, 422, 423, 424, 425, 426, 427,\n'
      '         428, 429, 430, 431, 432, 433, 434, 435, 436, 437, 438, 439, 440, 441,\n'
      '         442, 443, 444, 445, 446, 447, 448, 449, 450, 451, 452, 453, 454, 455,\n'
      '         456, 457, 458, 459, 460, 461, 462, 463, 464, 465, 466, 467, 468, 469,\n'
      '         470, 471, 472, 473, 474, 475, 476, 477, 478, 479, 480, 481, 482, 483,\n'
      '         484, 485, 486, 487, 488, 489, 490, 491, 492, 493, 494, 495, 496, 497,\n'
      '         498, 499],\n'
      '        [500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 510, 511, 512, 513,\n'
      '         514, 515, 516, 517, 518, 519, 520, 521, 522, 523, 524, 525, 526, 527,\n'
      '         528, 529, 530, 531, 532, 533, 534, 535, 536, 537, 538, 539, 540, 541,\n'
      '         542, 543, 544, 545, 546, 547, 548, 549, 550, 551, 552, 553, 554, 555,\n'
      '         556, 557, 558, 559, 560, 561, 562, 563, 564, 565, 566, 567, 568, 569,\n'
      '         570, 571, 572, 573, 574, 575, 576, 577, 578, 579, 580, 581, 582, 583,\n'
      '         584, 585, 586, 587, 588, 589, 590, 591, 592, 593, 594, 595, 596, 597,\n'
      '         598, 599],\n'
      '        [600, 601, 602, 603, 604, 605, 606, 607, 608, 609, 610, 611, 612, 613,\n'
      '         614, 615, 616, 617, 618, 619, 620, 621, 622, 623, 624, 625, 626, 627,\n'
      '         628, 629, 630, 631, 632, 633, 634, 635, 636, 637, 638, 639, 640, 641,\n'
      '         642, 643, 644, 645, 646, 647, 648, 649, 650, 651, 652, 653, 654, 655,\n'
      '         656, 657, 658, 659, 660, 661, 662, 663, 664, 665, 666, 667, 668, 669,\n'
      '         670, 671, 672, 673, 674, 675, 676, 677, 678, 679, 680, 681, 682, 683,\n'
      '         684, 685, 686, 687, 688, 689, 690, 691, 692, 693, 694, 695, 696, 697,\n'
      '         698, 699],\n'
      '        [700, 701, 702, 703, 704, 705, 706, 707, 708, 709, 710, 711, 712, 713,\n'
      '         714, 715, 716, 717, 718, 719, 720, 721, 722, 723, 724, 725, 726, 727,\n'
      '         728, 729, 730, 731, 732, 733, 734, 735, 736, 737, 738, 739, 740, 741,\n'
      '         742, 743, 744, 745, 746, 747, 748, 749, 750, 751, 752, 753, 754, 755,\n'
      '         756, 757, 758, 759, 760, 761, 762, 763, 764, 765, 766, 767, 768, 769,\n'
      '         770, 771, 772, 773, 774, 775, 776, 777, 778, 779, 780, 781, 782, 783,\n'
      '         784, 785, 786, 787, 788, 789, 790, 791, 792, 793, 794, 795, 796, 797,\n'
      '         798, 799],\n'
      '        [800, 801, 802, 803, 804, 805, 806, 807, 808, 809, 810, 811, 812, 813,\n'
      '         814, 815, 816, 817, 818, 819, 820, 821, 822, 823, 824, 825, 826, 827,\n'
      '         828, 829, 830, 831, 832, 833, 834, 835, 836, 837, 838, 839, 840, 841,\n'
      '         842, 843, 844, 845, 846, 847, 848, 849, 850, 851, 852, 853, 854, 855,\n'
      '         856, 857, 858, 859, 860, 861, 862, 863, 864, 865, 866, 867, 868, 869,\n'
      '         870, 871, 872, 873, 874, 875, 876, 877, 878, 879, 880, 881, 882, 883,\n'
      '         884, 885, 886, 887, 888, 889, 890, 891, 892, 893, 894, 895, 896, 897,\n'
      '         898, 899],\n'
      '        [900, 901, 902, 903, 904, 905, 906, 907, 908, 909, 910, 911, 912, 913,\n'
      '         914, 915, 916, 917, 918, 919, 920, 921, 922, 923, 924, 925, 926, 927,\n'
      '         928, 929, 930, 931, 932, 933, 934, 935, 936, 937, 938, 939, 940, 941,\n'
      '         942, 943, 944, 945, 946, 947, 948, 949, 950, 951, 952, 953, 954, 955,\n'
      '         956, 957, 958, 959, 960, 961, 962, 963, 964, 965, 966, 967, 968, 969,\n'
      '         970, 971, 972, 973, 974, 975, 976, 977, 978, 979, 980, 981, 982, 983,\n'
      '         984, 985, 986, 987, 988, 989, 990, 991, 992, 993, 994, 995, 996, 997,\n'
      '         998, 999]])')),
    ('opt_precision_2', {'precision': 2},
     lambda: dtorch.tensor([1.23456, 2.5]),
     'tensor([1.23, 2.50])'),
    ('opt_precision_0', {'precision': 0},
     lambda: dtorch.tensor([1.6, 2.5]),
     'tensor([2, 2])'),
    ('opt_precision_6_sci', {'precision': 6},
     lambda: dtorch.tensor([1.2345678e-7, 1.]),
     'tensor([1.234568e-07, 1.000000e+00])'),
    ('opt_threshold_5', {'threshold': 5},
     lambda: dtorch.arange(10),
     'tensor([0, 1, 2,  ..., 7, 8, 9])'),
    ('opt_edgeitems_1', {'threshold': 5, 'edgeitems': 1},
     lambda: dtorch.arange(36.).reshape(6, 6),
     ('tensor([[ 0.,  ...,  5.],\n'
      '        ...,\n'
      '        [30.,  ..., 35.]])')),
    ('opt_edgeitems_0_1d', {'threshold': 3, 'edgeitems': 0},
     lambda: dtorch.arange(10),
     'tensor([...], size=(10,))'),
    ('opt_edgeitems_0_2d', {'threshold': 3, 'edgeitems': 0},
     lambda: dtorch.arange(12.).reshape(3, 4),
     'tensor([...], size=(3, 4))'),
    ('opt_linewidth_30', {'linewidth': 30},
     lambda: dtorch.arange(20),
     ('tensor([ 0,  1,  2,  3,  4,\n'
      '         5,  6,  7,  8,  9,\n'
      '        10, 11, 12, 13, 14,\n'
      '        15, 16, 17, 18, 19])')),
    ('opt_linewidth_tiny', {'linewidth': 5},
     lambda: dtorch.tensor([1.5, 2.5, 3.5]),
     ('tensor([1.5000,\n'
      '        2.5000,\n'
      '        3.5000])')),
    ('opt_sci_true', {'sci_mode': True},
     lambda: dtorch.tensor([1.5, 2.]),
     'tensor([1.5000e+00, 2.0000e+00])'),
    ('opt_sci_true_int_valued', {'sci_mode': True},
     lambda: dtorch.tensor([1., 20.]),
     'tensor([1.0000e+00, 2.0000e+01])'),
    ('opt_sci_false', {'sci_mode': False},
     lambda: dtorch.tensor([1e5, 1e-5]),
     'tensor([100000.0000,      0.0000])'),
    ('opt_sci_false_int_valued', {'sci_mode': False},
     lambda: dtorch.tensor([1e10, 1.]),
     'tensor([10000000000.,           1.])'),
    ('opt_profile_short', {'profile': 'short'},
     lambda: dtorch.arange(2000.).reshape(40, 50) / 3,
     ('tensor([[0.00e+00, 3.33e-01,  ..., 1.60e+01, 1.63e+01],\n'
      '        [1.67e+01, 1.70e+01,  ..., 3.27e+01, 3.30e+01],\n'
      '        ...,\n'
      '        [6.33e+02, 6.34e+02,  ..., 6.49e+02, 6.50e+02],\n'
      '        [6.50e+02, 6.50e+02,  ..., 6.66e+02, 6.66e+02]])')),
    ('opt_profile_full', {'profile': 'full', 'linewidth': 400},
     lambda: dtorch.arange(1001) % 2,
     ('tensor([0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, '
      '0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0,'
      ' 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1'
      ', 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, '
      '0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0,'
      '\n'
      '        1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, '
      '1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,'
      ' 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0'
      ', 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, '
      '1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,'
      '\n'
      '        0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, '
      '0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0,'
      ' 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1'
      ', 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, '
      '0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0,'
      '\n'
      '        1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, '
      '1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,'
      ' 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0'
      ', 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, '
      '1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,'
      '\n'
      '        0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, '
      '0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0,'
      ' 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1'
      ', 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, '
      '0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0,'
      '\n'
      '        1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, '
      '1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,'
      ' 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0'
      ', 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, '
      '1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,'
      '\n'
      '        0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, '
      '0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0,'
      ' 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1'
      ', 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, '
      '0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0,'
      '\n'
      '        1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, '
      '1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,'
      ' 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0'
      ', 1, 0, 1, 0, 1, 0])')),
    ('opt_profile_then_override', {'profile': 'short', 'precision': 3},
     lambda: dtorch.tensor([1.23456]),
     'tensor([1.235])'),
    ('grad_leaf', None,
     lambda: dtorch.tensor([1., 2.], requires_grad=True),
     'tensor([1., 2.], requires_grad=True)'),
    ('grad_leaf_scalar', None,
     lambda: dtorch.tensor(3.5, requires_grad=True),
     'tensor(3.5000, requires_grad=True)'),
    ('grad_add', None,
     lambda: dtorch.tensor([1., 2.], requires_grad=True) + 1,
     'tensor([2., 3.], grad_fn=<AddBackward0>)'),
    ('grad_mean', None,
     lambda: dtorch.tensor([1., 2.], requires_grad=True).mean(),
     'tensor(1.5000, grad_fn=<MeanBackward0>)'),
    ('grad_sum', None,
     lambda: dtorch.tensor([1.5, 2.], requires_grad=True).sum(),
     'tensor(3.5000, grad_fn=<SumBackward0>)'),
    ('grad_mul_float64', None,
     lambda: dtorch.tensor([1., 2.], dtype=dtorch.float64, requires_grad=True) * 2,
     'tensor([2., 4.], dtype=dtorch.float64, grad_fn=<MulBackward0>)'),
    ('grad_leaf_matrix_wraps_suffix', None,
     lambda: dtorch.arange(100.).reshape(10, 10).requires_grad_(),
     ('tensor([[ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9.],\n'
      '        [10., 11., 12., 13., 14., 15., 16., 17., 18., 19.],\n'
      '        [20., 21., 22., 23., 24., 25., 26., 27., 28., 29.],\n'
      '        [30., 31., 32., 33., 34., 35., 36., 37., 38., 39.],\n'
      '        [40., 41., 42., 43., 44., 45., 46., 47., 48., 49.],\n'
      '        [50., 51., 52., 53., 54., 55., 56., 57., 58., 59.],\n'
      '        [60., 61., 62., 63., 64., 65., 66., 67., 68., 69.],\n'
      '        [70., 71., 72., 73., 74., 75., 76., 77., 78., 79.],\n'
      '        [80., 81., 82., 83., 84., 85., 86., 87., 88., 89.],\n'
      '        [90., 91., 92., 93., 94., 95., 96., 97., 98., 99.]],\n'
      '       requires_grad=True)')),
    ('grad_long_row', None,
     lambda: dtorch.arange(60.).requires_grad_() * 1.5,
     ('tensor([ 0.0000,  1.5000,  3.0000,  4.5000,  6.0000,  7.5000,  9.0000, 10.5000,\n'
      '        12.0000, 13.5000, 15.0000, 16.5000, 18.0000, 19.5000, 21.0000, 22.5000,\n'
      '        24.0000, 25.5000, 27.0000, 28.5000, 30.0000, 31.5000, 33.0000, 34.5000,\n'
      '        36.0000, 37.5000, 39.0000, 40.5000, 42.0000, 43.5000, 45.0000, 46.5000,\n'
      '        48.0000, 49.5000, 51.0000, 52.5000, 54.0000, 55.5000, 57.0000, 58.5000,\n'
      '        60.0000, 61.5000, 63.0000, 64.5000, 66.0000, 67.5000, 69.0000, 70.5000,\n'
      '        72.0000, 73.5000, 75.0000, 76.5000, 78.0000, 79.5000, 81.0000, 82.5000,\n'
      '        84.0000, 85.5000, 87.0000, 88.5000], grad_fn=<MulBackward0>)')),
    ('grad_empty', None,
     lambda: dtorch.zeros(0, requires_grad=True),
     'tensor([], requires_grad=True)'),
    ('grad_empty_2d_float64', None,
     lambda: dtorch.zeros(0, 3, dtype=dtorch.float64, requires_grad=True),
     'tensor([], size=(0, 3), dtype=dtorch.float64, requires_grad=True)'),
    ('grad_summarized', None,
     lambda: dtorch.arange(2000.).requires_grad_(),
     ('tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n'
      '        1.9990e+03], requires_grad=True)')),
    ('detached', None,
     lambda: (dtorch.tensor([1., 2.], requires_grad=True) * 2).detach(),
     'tensor([2., 4.])'),
]


@pytest.mark.parametrize("options, build, expected", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_repr_matches_pytorch(options, build, expected):
    t = build()
    set_printoptions(**(options or {}))
    assert repr(t) == expected
    assert str(t) == expected


def _as(cls, t):
    """``t`` re-typed as the Tensor subclass ``cls`` (how a subclass instance looks to printing)."""
    t.__class__ = cls
    return t


class Parameter(dtorch.Tensor):
    """Stands in for ``dtorch.nn.Parameter``: printing recognises it by name and package."""

    __module__ = "dtorch.nn.parameter"


# ----------------------------------------------------------------------------- default dtype
def test_default_dtype_float64_moves_the_dtype_suffix():
    dtorch.set_default_dtype(dtorch.float64)
    assert repr(dtorch.tensor([1.5, 2.])) == "tensor([1.5000, 2.0000])"
    assert repr(dtorch.tensor([1., 2.])) == "tensor([1., 2.])"
    assert repr(dtorch.tensor([1., 2.], dtype=dtorch.float32)) == (
        "tensor([1., 2.], dtype=dtorch.float32)")
    assert repr(dtorch.tensor(2.5, dtype=dtorch.float32)) == (
        "tensor(2.5000, dtype=dtorch.float32)")
    assert repr(dtorch.tensor([1.5], dtype=dtorch.float16)) == (
        "tensor([1.5000], dtype=dtorch.float16)")
    assert repr(dtorch.tensor([])) == "tensor([])"
    assert repr(dtorch.tensor([], dtype=dtorch.float32)) == "tensor([], dtype=dtorch.float32)"
    assert repr(dtorch.tensor([1., 2.], requires_grad=True).mean()) == (
        "tensor(1.5000, grad_fn=<MeanBackward0>)")
    assert repr(dtorch.tensor([1, 2])) == "tensor([1, 2])"


# ----------------------------------------------------------------------------- print options
def test_printoptions_defaults_and_profiles():
    assert get_printoptions() == {"precision": 4, "threshold": 1000, "edgeitems": 3,
                                  "linewidth": 80, "sci_mode": None}
    set_printoptions(profile="short")
    assert get_printoptions() == {"precision": 2, "threshold": 1000, "edgeitems": 2,
                                  "linewidth": 80, "sci_mode": None}
    set_printoptions(profile="full", linewidth=120)
    opts = get_printoptions()
    assert math.isinf(opts["threshold"]) and opts["linewidth"] == 120
    set_printoptions(profile="default")
    assert get_printoptions()["linewidth"] == 80


def test_sci_mode_is_reset_by_every_call_and_unknown_profile_is_ignored():
    # PyTorch's semantics: sci_mode takes the value passed (None when omitted).
    set_printoptions(sci_mode=True)
    set_printoptions(precision=3)
    assert get_printoptions() == {"precision": 3, "threshold": 1000, "edgeitems": 3,
                                  "linewidth": 80, "sci_mode": None}
    set_printoptions(profile="nope")
    assert get_printoptions()["precision"] == 3


def test_get_printoptions_round_trips_and_is_a_copy():
    set_printoptions(precision=2, threshold=7, edgeitems=1, linewidth=50, sci_mode=False)
    opts = get_printoptions()
    opts["precision"] = 9
    assert get_printoptions()["precision"] == 2
    set_printoptions(profile="default")
    set_printoptions(**{**opts, "precision": 2})
    assert get_printoptions() == {"precision": 2, "threshold": 7, "edgeitems": 1,
                                  "linewidth": 50, "sci_mode": False}


def test_printoptions_context_manager_restores():
    with printoptions(precision=1, threshold=5):
        assert repr(dtorch.tensor([1.25, 2.])) == "tensor([1.2, 2.0])"
        assert repr(dtorch.arange(10)) == "tensor([0, 1, 2,  ..., 7, 8, 9])"
    assert repr(dtorch.tensor([1.25, 2.])) == "tensor([1.2500, 2.0000])"


def test_profile_full_lifts_a_lower_threshold():
    set_printoptions(threshold=5)
    set_printoptions(profile="full")
    assert repr(dtorch.arange(10)) == "tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])"


# ----------------------------------------------------------------------------- layouts
def test_non_contiguous_views():
    assert repr(dtorch.arange(6).reshape(2, 3).t()) == (
        "tensor([[0, 3],\n        [1, 4],\n        [2, 5]])")
    assert repr(dtorch.arange(12.).reshape(3, 4)[:, ::2]) == (
        "tensor([[ 0.,  2.],\n        [ 4.,  6.],\n        [ 8., 10.]])")


def test_wrapped_numpy_arrays_and_attributes_set_directly():
    t = dtorch.Tensor._wrap(np.array([[0.25, 4.0]], dtype=np.float64), requires_grad=True)
    assert repr(t) == "tensor([[0.2500, 4.0000]], dtype=dtorch.float64, requires_grad=True)"
    assert repr(dtorch.Tensor._wrap(np.array(7, dtype=np.int8))) == (
        "tensor(7, dtype=dtorch.int8)")


def test_suffix_wraps_at_linewidth():
    # PyTorch's rule: a suffix moves to its own line, under the data, when it would end past
    # linewidth. ``dtype=dtorch.float64`` is one character longer than PyTorch's spelling, so
    # this first case wraps here where torch's 'dtype=torch.float64' just fits.
    set_printoptions(linewidth=40)
    inf = float("inf")
    assert repr(dtorch.tensor([inf, inf], dtype=dtorch.float64)) == (
        "tensor([inf, inf],\n       dtype=dtorch.float64)")
    assert repr(dtorch.tensor([inf], dtype=dtorch.float64)) == (
        "tensor([inf], dtype=dtorch.float64)")
    set_printoptions(linewidth=60)  # as PyTorch: the first suffix fits, the second wraps
    x = dtorch.tensor([1., 2., 3.], dtype=dtorch.float64, requires_grad=True)
    assert repr(x) == "tensor([1., 2., 3.], dtype=dtorch.float64,\n       requires_grad=True)"


def test_tensor_contents_replaces_the_data():
    t = dtorch.tensor([1., 2.], dtype=dtorch.float64)
    assert _printing.tensor_repr(t, tensor_contents="[...]") == (
        "tensor([...], dtype=dtorch.float64)")


# ----------------------------------------------------------------------------- devices
def test_device_suffix_comes_first(monkeypatch):
    # A CPU-only machine has no CUDA tensors: make a CPU tensor report cuda:1 instead.
    monkeypatch.setattr(dtorch.Tensor, "device",
                        property(lambda self: dtorch.device("cuda", 1)))
    x = dtorch.tensor([1., 2.], dtype=dtorch.float64, requires_grad=True)
    assert repr(x) == (
        "tensor([1., 2.], device='cuda:1', dtype=dtorch.float64, requires_grad=True)")
    assert repr(dtorch.tensor([], dtype=dtorch.int64)) == (
        "tensor([], device='cuda:1', dtype=dtorch.int64)")


@pytest.mark.skipif(not dtorch.cuda.is_available(), reason="needs a CUDA GPU and CuPy")
def test_cuda_tensor():
    x = dtorch.tensor([1.5, 2.], device="cuda")
    assert repr(x) == "tensor([1.5000, 2.0000], device='cuda:0')"
    x = dtorch.tensor([1., 2.], dtype=dtorch.float64, device="cuda", requires_grad=True)
    assert repr(x) == (
        "tensor([1., 2.], device='cuda:0', dtype=dtorch.float64, requires_grad=True)")
    assert repr(dtorch.arange(2000, device="cuda")) == (
        "tensor([   0,    1,    2,  ..., 1997, 1998, 1999], device='cuda:0')")


# ----------------------------------------------------------------------------- subclasses
def test_parameter_repr():
    p = _as(Parameter, dtorch.tensor([1., 2.], requires_grad=True))
    assert parameter_repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    p = _as(Parameter, dtorch.arange(6.).reshape(2, 3).requires_grad_())
    assert parameter_repr(p) == (
        "Parameter containing:\ntensor([[0., 1., 2.],\n        [3., 4., 5.]], requires_grad=True)")
    p = _as(Parameter, dtorch.tensor([1, 2]))
    assert parameter_repr(p) == "Parameter containing:\ntensor([1, 2])"
    p = _as(Parameter, dtorch.zeros(2, 0, requires_grad=True))
    assert parameter_repr(p) == (
        "Parameter containing:\ntensor([], size=(2, 0), requires_grad=True)")


def test_subclass_names_itself():
    class MyTensor(dtorch.Tensor):
        pass

    class MyParameter(Parameter):
        pass

    assert repr(_as(MyTensor, dtorch.tensor([1., 2.], requires_grad=True))) == (
        "MyTensor([1., 2.], requires_grad=True)")
    p = _as(MyParameter, dtorch.tensor([1., 2.], requires_grad=True))
    assert parameter_repr(p) == (
        "Parameter containing:\nParameter(MyParameter([1., 2.], requires_grad=True))")


def test_nn_parameter_if_present():
    nn = pytest.importorskip("dtorch.nn")
    p = nn.Parameter(dtorch.tensor([1., 2.]))
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
