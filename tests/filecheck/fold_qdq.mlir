// RUN: nnc-opt %s -p fold-qdq | filecheck %s

// a: dequantize -> reshape -> quantize with equal parameters: the reshape moves onto the
//    u8 tensor and both conversions go.
// b: different parameters (0.5, 3) -> (0.25, 0, i8): one nn.requantize.
// c: per-channel dequantize: left alone.

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[A:.*]] = "nn.reshape"(%0) <{shape = array<i64: 2, 2>}> : (tensor<1x4xui8>) -> tensor<2x2xui8>
// CHECK-NEXT:    %[[B:.*]] = "nn.requantize"(%0) <{x_scale = 5.000000e-01 : f64, x_zp = 3 : i64, y_scale = 2.500000e-01 : f64, y_zp = 0 : i64, dtype = "i8"}>
// CHECK-NEXT:    %[[D:.*]] = "nn.dequantize"(%0)
// CHECK-SAME:    [4]
// CHECK-NEXT:    %[[C:.*]] = "nn.quantize"(%[[D]])
// CHECK-NEXT:    func.return %[[A]], %[[B]], %[[C]]

builtin.module {
  func.func @main(%0: tensor<1x4xui8>) -> (tensor<2x2xui8>, tensor<1x4xi8>, tensor<1x4xui8>) attributes {nn.input_names = ["x"], nn.output_names = ["a", "b", "c"]} {
    %1 = "nn.dequantize"(%0) <{scale = #nn.weight<"f32", [], "0x0000003F">, zero_point = #nn.weight<"i32", [], "0x03000000">, axis = 1 : i64, group_size = 0 : i64}> : (tensor<1x4xui8>) -> tensor<1x4xf32>
    %2 = "nn.reshape"(%1) <{shape = array<i64: 2, 2>}> : (tensor<1x4xf32>) -> tensor<2x2xf32>
    %3 = "nn.quantize"(%2) <{scale = #nn.weight<"f32", [], "0x0000003F">, zero_point = #nn.weight<"i32", [], "0x03000000">, axis = 1 : i64, group_size = 0 : i64, dtype = "u8"}> : (tensor<2x2xf32>) -> tensor<2x2xui8>
    %4 = "nn.quantize"(%1) <{scale = #nn.weight<"f32", [], "0x0000803E">, zero_point = #nn.weight<"i32", [], "0x00000000">, axis = 1 : i64, group_size = 0 : i64, dtype = "i8"}> : (tensor<1x4xf32>) -> tensor<1x4xi8>
    %5 = "nn.dequantize"(%0) <{scale = #nn.weight<"f32", [4], "0x0000003F0000803F0000803F0000803F">, zero_point = #nn.weight<"i32", [4], "0x00000000000000000000000000000000">, axis = 1 : i64, group_size = 0 : i64}> : (tensor<1x4xui8>) -> tensor<1x4xf32>
    %6 = "nn.quantize"(%5) <{scale = #nn.weight<"f32", [], "0x0000003F">, zero_point = #nn.weight<"i32", [], "0x00000000">, axis = 1 : i64, group_size = 0 : i64, dtype = "u8"}> : (tensor<1x4xf32>) -> tensor<1x4xui8>
    func.return %3, %4, %6 : tensor<2x2xui8>, tensor<1x4xi8>, tensor<1x4xui8>
  }
}

