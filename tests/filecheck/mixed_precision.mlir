// RUN: python -c "from nnc.testing.quant_models import fragile_calibration as c; import numpy as np; np.savez('%t.npz', **c(8, 4))"
// RUN: nnc-opt %s -p 'mixed-precision{data="%t.npz" max-error=0.05},quantize{mode=int4-weight group-size=128},quantize{mode=int8},fold-qdq,dce' | filecheck %s
// RUN: nnc-opt %s -p 'mixed-precision{data="%t.npz" max-error=0.05}' | filecheck %s --check-prefix=MARK
// RUN: nnc-opt %s -p 'mixed-precision{data="%t.npz" max-error=0.0}' | filecheck %s --check-prefix=ZERO
// RUN: nnc-opt %s -p mixed-precision | filecheck %s --check-prefix=NODATA

// nnc.testing.quant_models.fragile_mlp((4, 4, 2), batch=2): the first gemm is fragile
// (int8 alone: output error ~0.76), the second is not (~0.005). A 5 % error budget keeps
// the first float and quantizes the second; a zero budget quantizes nothing.

// MARK:       "nn.gemm"(%0
// MARK-SAME:  nn.quant_mode = "float"
// MARK:       "nn.gemm"
// MARK-SAME:  nn.quant_mode = "int8"

// CHECK-LABEL: func.func @main
// CHECK:       %[[H:.*]] = "nn.gemm"(%0
// CHECK-SAME:  activation = "relu"
// CHECK:       "nn.quantize"(%[[H]])
// CHECK:       "nn.qgemm"
// CHECK:       "nn.dequantize"

// ZERO-COUNT-2: nn.quant_mode = "float"

// NODATA-NOT: nn.quant_mode

builtin.module {
  func.func @main(%0: tensor<2x4xf32>) -> tensor<2x2xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [4], "0xCDCCCC3DCDCCCC3DCDCCCC3DCDCCCC3D">}> : () -> tensor<4xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [4, 4], "0x53E09641995422BDE3BC443EB9E6003D68B3A0C2FC29DE3D5E4BC83EBD78913EDE1ED3C2665EC2BE4C783FBE1E204B3C9760AEC3F46C86BD365FBFBED9F360BE">}> : () -> tensor<4x4xf32>
    %3 = "nn.gemm"(%0, %2, %1) <{trans_a = 0 : i64, trans_b = 1 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "relu", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<2x4xf32>, tensor<4x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
    %4 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0xCDCCCC3DCDCCCC3D">}> : () -> tensor<2xf32>
    %5 = "nn.constant"() <{value = #nn.weight<"f32", [2, 4], "0x453227BEB755C2BDE3E7FC3D4B21A03E82F11DBD88E3D13E0A594CBEC1F7D73D">}> : () -> tensor<2x4xf32>
    %6 = "nn.gemm"(%3, %5, %4) <{trans_a = 0 : i64, trans_b = 1 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2xf32>) -> tensor<2x2xf32>
    func.return %6 : tensor<2x2xf32>
  }
}
