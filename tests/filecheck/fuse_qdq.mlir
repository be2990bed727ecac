// RUN: nnc-opt %s -p fuse-qdq | filecheck %s

// dequantize(x; 0.5, 128) -> conv(W on the int8 grid: rows (127, -64) * 0.25 and
// (3, 127) * 0.125, bias (1, -0.5)) + relu -> quantize(0.1, 0, u8) becomes one nn.qconv:
// w = 0x7FC0037F, w_scale = (0.25, 0.125), bias = (1, -0.5) / (0.5 * w_scale) = (8, -8).
// The gemm reads a reshape of the dequantized value: left alone (negative case).

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[W:.*]] = "nn.constant"() <{value = #nn.weight<"i8", [2, 2, 1, 1], "0x7FC0037F">}>
// CHECK-NEXT:    %[[B:.*]] = "nn.constant"() <{value = #nn.weight<"i32", [2], "0x08000000F8FFFFFF">}>
// CHECK-NEXT:    %[[Y:.*]] = "nn.qconv"(%0, %[[W]], %[[B]])
// CHECK-SAME:    x_scale = 5.000000e-01 : f64, x_zp = 128 : i64, w_scale = #nn.weight<"f32", [2], "0x0000803E0000003E">
// CHECK-SAME:    out_dtype = "u8", activation = "relu"
// CHECK-NEXT:    "nn.dequantize"(%[[Y]])
// CHECK:         "nn.gemm"
// CHECK-NEXT:    "nn.quantize"
// CHECK-NOT:     nn.conv

builtin.module {
  func.func @main(%0: tensor<1x2x2x2xui8>) -> tensor<1x3xi8> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.dequantize"(%0) <{scale = #nn.weight<"f32", [], "0x0000003F">, zero_point = #nn.weight<"i32", [], "0x80000000">, axis = 1 : i64, group_size = 0 : i64}> : (tensor<1x2x2x2xui8>) -> tensor<1x2x2x2xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2, 1, 1], "0x0000FE41000080C10000C03E00007E41">}> : () -> tensor<2x2x1x1xf32>
    %3 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000803F000000BF">}> : () -> tensor<2xf32>
    %4 = "nn.conv"(%1, %2, %3) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "relu", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x2x2x2xf32>, tensor<2x2x1x1xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    %5 = "nn.quantize"(%4) <{scale = #nn.weight<"f32", [], "0xCDCCCC3D">, zero_point = #nn.weight<"i32", [], "0x00000000">, axis = 1 : i64, group_size = 0 : i64, dtype = "u8"}> : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xui8>
    %6 = "nn.dequantize"(%5) <{scale = #nn.weight<"f32", [], "0xCDCCCC3D">, zero_point = #nn.weight<"i32", [], "0x00000000">, axis = 1 : i64, group_size = 0 : i64}> : (tensor<1x2x2x2xui8>) -> tensor<1x2x2x2xf32>
    %7 = "nn.reshape"(%6) <{shape = array<i64: 1, 8>}> : (tensor<1x2x2x2xf32>) -> tensor<1x8xf32>
    %8 = "nn.constant"() <{value = #nn.weight<"f32", [8, 3], "0xCDCCCC3D35780E3E048A363ED39B5E3ED156833EB95F973EA068AB3E8871BF3E6F7AD33E5783E73E3E8CFB3E93CA073F07CF113F7AD31B3FEED7253F62DC2F3FD6E0393F49E5433FBDE94D3F31EE573FA5F2613F18F76B3F8CFB753F0000803F">}> : () -> tensor<8x3xf32>
    %9 = "nn.gemm"(%7, %8) <{trans_a = 0 : i64, trans_b = 0 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<1x8xf32>, tensor<8x3xf32>) -> tensor<1x3xf32>
    %10 = "nn.quantize"(%9) <{scale = #nn.weight<"f32", [], "0xCDCC4C3D">, zero_point = #nn.weight<"i32", [], "0x00000000">, axis = 1 : i64, group_size = 0 : i64, dtype = "i8"}> : (tensor<1x3xf32>) -> tensor<1x3xi8>
    func.return %10 : tensor<1x3xi8>
  }
}

