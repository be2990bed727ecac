// RUN: nnc-opt %s -p 'quantize{mode=int8},fold-qdq' | filecheck %s --check-prefix=INT8
// RUN: nnc-opt %s -p 'quantize{mode=int4-weight group-size=2}' | filecheck %s --check-prefix=INT4
// RUN: nnc-opt %s -p 'quantize{mode=fp16}' | filecheck %s --check-prefix=FP16
// RUN: nnc-opt %s -p 'quantize{mode=int8-dynamic}' | filecheck %s --check-prefix=DYN

// conv(x, w, b) + relu with calibrated ranges x in [-1, 1], y in [0, 2.55], then a gemm
// with a sigmoid (not an integer epilogue: under int8 the gemm takes int8 weights with
// dynamically quantized activations, and the sigmoid runs in float).
// int8: x -> u8 with scale 2/255 (0x3C008081), zp 127; w per-channel scales 1/127, 2/127;
// w = [1, -0.5 | 0.25, 2] -> [127, -64 | 16, 127] = 0x7FC0107F (rint half to even);
// bias 0.5 / (2/255 * 1/127) = 8096 = 0x1FA0; y scale 0.01, zp 0.

// INT8-LABEL: func.func @main
// INT8:       %[[XQ:.*]] = "nn.quantize"(%0) <{scale = #nn.weight<"f32", [], "0x8180003C">, zero_point = #nn.weight<"i32", [], "0x7F000000">
// INT8-SAME:  dtype = "u8"
// INT8-NEXT:  %[[W:.*]] = "nn.constant"() <{value = #nn.weight<"i8", [2, 2, 1, 1], "0x7FC0107F">}>
// INT8-NEXT:  %[[B:.*]] = "nn.constant"() <{value = #nn.weight<"i32", [2], "0xA01F000060E0FFFF">}>
// INT8-NEXT:  %[[Y:.*]] = "nn.qconv"(%[[XQ]], %[[W]], %[[B]])
// INT8-SAME:  x_zp = 127 : i64, w_scale = #nn.weight<"f32", [2], "0x0402013C0402813C">
// INT8-SAME:  y_zp = 0 : i64
// INT8-SAME:  out_dtype = "u8", activation = "relu"
// INT8-NEXT:  %[[D:.*]] = "nn.dequantize"(%[[Y]])
// INT8-NEXT:  "nn.reshape"(%[[D]])
// INT8:       "nn.wq_gemm"
// INT8-SAME:  storage = "i8"
// INT8-SAME:  act_quant = "dynamic", activation = "sigmoid"
// INT8-NOT:   nn.qgemm

// INT4-LABEL: func.func @main
// INT4:       "nn.wq_conv"
// INT4-SAME:  storage = "i4", scale = #nn.weight<"f16", [2, 1], "0x93309334">
// INT4:       "nn.wq_gemm"
// INT4-SAME:  storage = "i4", scale = #nn.weight<"f16", [3, 4]
// INT4-SAME:  group_size = 2 : i64, act_quant = "none", activation = "sigmoid"
// INT4-NOT:   "nn.conv"

// FP16:       %[[W:.*]] = "nn.constant"() <{value = #nn.weight<"f16", [2, 2], "0x003C00B800340040">}>
// FP16:       "nn.wq_conv"(%0, %[[W]]
// FP16-SAME:  storage = "f16"
// FP16:       "nn.wq_gemm"

// DYN:        "nn.wq_conv"
// DYN-SAME:   storage = "i8", scale = #nn.weight<"f32", [2, 1], "0x0402013C0402813C">
// DYN-SAME:   act_quant = "dynamic", activation = "relu"
// DYN:        "nn.wq_gemm"
// DYN-SAME:   act_quant = "dynamic", activation = "sigmoid"

builtin.module {
  func.func @main(%0: tensor<1x2x2x2xf32>) -> tensor<1x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"], nn.arg_ranges = [array<f64: -1.000000e+00, 1.000000e+00>]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2, 1, 1], "0x0000803F000000BF0000803E00000040">}> : () -> tensor<2x2x1x1xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000003F000080BF">}> : () -> tensor<2xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "relu", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> {nn.range = array<f64: 0.000000e+00, 2.550000e+00>} : (tensor<1x2x2x2xf32>, tensor<2x2x1x1xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    %4 = "nn.reshape"(%3) <{shape = array<i64: 1, 8>}> {nn.range = array<f64: 0.000000e+00, 2.550000e+00>} : (tensor<1x2x2x2xf32>) -> tensor<1x8xf32>
    %5 = "nn.constant"() <{value = #nn.weight<"f32", [3, 8], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<3x8xf32>
    %6 = "nn.gemm"(%4, %5) <{trans_a = 0 : i64, trans_b = 1 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "sigmoid", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> {nn.range = array<f64: 0.000000e+00, 1.000000e+00>} : (tensor<1x8xf32>, tensor<3x8xf32>) -> tensor<1x3xf32>
    func.return %6 : tensor<1x3xf32>
  }
}

