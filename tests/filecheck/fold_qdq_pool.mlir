// RUN: nnc-opt %s -p fold-qdq | filecheck %s

// dequantize -> global_avg_pool -> reshape -> quantize (the island before a classifier):
// one nn.qglobal_avg_pool on the u8 tensor, the reshape moves onto its u8 result, and no
// float op or quantize/dequantize is left.

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[P:.*]] = "nn.qglobal_avg_pool"(%0) <{x_scale = 5.000000e-01 : f64, x_zp = 3 : i64, y_scale = 2.500000e-01 : f64, y_zp = 1 : i64, dtype = "u8"}> : (tensor<1x8x7x7xui8>) -> tensor<1x8x1x1xui8>
// CHECK-NEXT:    %[[R:.*]] = "nn.reshape"(%[[P]]) <{shape = array<i64: 1, 8>}> : (tensor<1x8x1x1xui8>) -> tensor<1x8xui8>
// CHECK-NEXT:    func.return %[[R]]
// CHECK-NOT:     nn.global_avg_pool
// CHECK-NOT:     nn.dequantize

builtin.module {
  func.func @main(%0: tensor<1x8x7x7xui8>) -> tensor<1x8xui8> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.dequantize"(%0) <{scale = #nn.weight<"f32", [], "0x0000003F">, zero_point = #nn.weight<"i32", [], "0x03000000">, axis = 1 : i64, group_size = 0 : i64}> : (tensor<1x8x7x7xui8>) -> tensor<1x8x7x7xf32>
    %2 = "nn.global_avg_pool"(%1) : (tensor<1x8x7x7xf32>) -> tensor<1x8x1x1xf32>
    %3 = "nn.reshape"(%2) <{shape = array<i64: 1, 8>}> : (tensor<1x8x1x1xf32>) -> tensor<1x8xf32>
    %4 = "nn.quantize"(%3) <{scale = #nn.weight<"f32", [], "0x0000803E">, zero_point = #nn.weight<"i32", [], "0x01000000">, axis = 1 : i64, group_size = 0 : i64, dtype = "u8"}> : (tensor<1x8xf32>) -> tensor<1x8xui8>
    func.return %4 : tensor<1x8xui8>
  }
}
